// Convolution functional ops (autograd-aware), PyTorch's F.conv1d / F.conv2d, and the
// IntPair type that spatial hyper-parameters (kernel size, stride, padding, dilation)
// are given in here and in nn/.
//
// Invariants: inputs are (N, C, H, W) or unbatched (C, H, W) (1-D: (N, C, L) or (C, L));
// weight is (O, C / groups, kH, kW) (1-D: (O, C / groups, k)); bias, when given, is (O).
// All have one floating dtype and one device. Output size per spatial dim:
// (in + 2 * padding - dilation * (k - 1) - 1) / stride + 1, which must be >= 1.
// One graph node per call, with inputs (x, weight, bias).
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace zae {

/// Two integers for the (height, width) dims: one value for both (`3`) or a pair
/// (`{3, 5}`). Remembers which form it was given in, so that modules can print it the
/// way PyTorch does (`3` vs `(3, 5)`).
struct IntPair {
  int64_t h = 0;
  int64_t w = 0;
  bool scalar = false;  ///< constructed from one value

  IntPair(int64_t v) : h(v), w(v), scalar(true) {}  // NOLINT(google-explicit-constructor): `.stride = 2`
  IntPair(int64_t h_, int64_t w_) : h(h_), w(w_) {}

  /// "3" when given as one value, else "(3, 5)".
  std::string str() const;
  /// Always the tuple form "(3, 3)".
  std::string tuple_str() const;
  /// Compares values only (IntPair(2) == IntPair(2, 2)).
  bool operator==(const IntPair& o) const { return h == o.h && w == o.w; }
};

struct Conv2dParams {
  IntPair stride = 1;
  IntPair padding = 0;
  IntPair dilation = 1;
  int64_t groups = 1;
};

/// 2-D cross-correlation as torch.nn.functional.conv2d: x (N, C, H, W) or (C, H, W),
/// weight (O, C / groups, kH, kW), optional bias (O) -> (N, O, Ho, Wo) (or (O, Ho, Wo)).
/// CPU: im2col + GEMM (kernels/cpu/im2col.h); float32/float64, and float16/bfloat16
/// computed in float32.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dParams& params = {});

struct Conv1dParams {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
};

/// 1-D cross-correlation as torch.nn.functional.conv1d: x (N, C, L) or (C, L),
/// weight (O, C / groups, k), optional bias (O) -> (N, O, Lo) (or (O, Lo)). Runs conv2d
/// on (N, C, 1, L) views.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv1dParams& params = {});

}  // namespace zae
