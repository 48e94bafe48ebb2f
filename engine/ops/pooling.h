// 2-D pooling functional ops (autograd-aware) with PyTorch's semantics: max_pool2d
// (with indices), avg_pool2d and adaptive_avg_pool2d over (N, C, H, W) or (C, H, W).
//
// Invariants:
// - Output size per dim (max/avg): floor or ceil of
//   (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1, and with ceil_mode the
//   last window must start inside the input or its left padding (else it is dropped).
//   Kernel, stride and dilation must be positive, padding <= kernel / 2, output >= 1.
// - max_pool2d: NaN wins (propagates); ties keep the first maximum in row-major window
//   order; indices are flat positions h * W + w in the input plane (int64).
// - avg_pool2d: windows are clipped to the padded input; the divisor is the clipped
//   window's area (count_include_pad) or its in-input area, or divisor_override.
// - adaptive_avg_pool2d: output bin i of a dim covers [floor(i * in / out),
//   ceil((i + 1) * in / out)).
// - One graph node per call; backward kernels are exact adjoints (no double backward).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "engine/ops/conv.h"
#include "engine/tensor.h"

namespace zae {

/// torch.nn.functional.max_pool2d. stride defaults to kernel_size.
Tensor max_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride = std::nullopt,
                  IntPair padding = 0, IntPair dilation = 1, bool ceil_mode = false);

/// max_pool2d returning (output, indices); indices are int64, flat per (H, W) plane.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, IntPair kernel_size,
                                                  std::optional<IntPair> stride = std::nullopt, IntPair padding = 0,
                                                  IntPair dilation = 1, bool ceil_mode = false);

/// torch.nn.functional.avg_pool2d. stride defaults to kernel_size; divisor_override != 0.
Tensor avg_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride = std::nullopt,
                  IntPair padding = 0, bool ceil_mode = false, bool count_include_pad = true,
                  std::optional<int64_t> divisor_override = std::nullopt);

/// torch.nn.functional.adaptive_avg_pool2d to output_size (Ho, Wo), each >= 1.
Tensor adaptive_avg_pool2d(const Tensor& x, IntPair output_size);

/// PyTorch's pooling output size for one dim (after validation; exposed for tests and layers).
int64_t pooling_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                            bool ceil_mode);

}  // namespace zae
