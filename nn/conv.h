// Convolution layers, as torch.nn.Conv1d / Conv2d (zero padding). Forward delegates to
// the functional ops in engine/ops/conv.h.
// Invariants: parameters "weight" (out_channels, in_channels / groups, *kernel) and,
// when bias, "bias" (out_channels) — PyTorch's state-dict keys; both start
// U[-1/sqrt(fan_in), 1/sqrt(fan_in)] with fan_in = in_channels / groups * prod(kernel)
// (PyTorch's kaiming_uniform_(a = sqrt(5)) and bias rule), weight drawn first, from the
// default generator. Options are validated at construction with the layer's repr.
#pragma once

#include <cstdint>
#include <string>

#include "engine/ops/conv.h"
#include "nn/module.h"

namespace zae::nn {

/// 1-D convolution over (N, C, L) or unbatched (C, L) input.
class Conv1d : public Layer {
 public:
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_size = 0;
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t dilation = 1;
    int64_t groups = 1;
    bool bias = true;
  };
  explicit Conv1d(const Options& opts);
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : Conv1d(Options{.in_channels = in_channels, .out_channels = out_channels, .kernel_size = kernel_size}) {}

  /// x (N, in_channels, L) -> (N, out_channels, Lo).
  Tensor forward(const Tensor& x) override;
  /// Redraws the parameters as the constructor does.
  void reset_parameters();
  /// PyTorch's text, e.g. "3, 4, kernel_size=(3,), stride=(2,), padding=(1,)".
  std::string extra_repr() const override;

  const Options& options() const { return opts_; }
  const Tensor& weight() const { return weight_; }
  /// Undefined when constructed with bias = false.
  const Tensor& bias() const { return bias_; }

 private:
  Options opts_;
  Tensor weight_;  // (out_channels, in_channels / groups, kernel_size)
  Tensor bias_;    // (out_channels) or undefined
};

/// 2-D convolution over (N, C, H, W) or unbatched (C, H, W) input. Square kernels,
/// strides, paddings and dilations may be given as one value: `.kernel_size = 3`.
class Conv2d : public Layer {
 public:
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    IntPair kernel_size = 0;
    IntPair stride = 1;
    IntPair padding = 0;
    IntPair dilation = 1;
    int64_t groups = 1;
    bool bias = true;
  };
  explicit Conv2d(const Options& opts);
  Conv2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size)
      : Conv2d(Options{.in_channels = in_channels, .out_channels = out_channels, .kernel_size = kernel_size}) {}

  /// x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).
  Tensor forward(const Tensor& x) override;
  /// Redraws the parameters as the constructor does.
  void reset_parameters();
  /// PyTorch's text, e.g. "1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)".
  std::string extra_repr() const override;

  const Options& options() const { return opts_; }
  const Tensor& weight() const { return weight_; }
  /// Undefined when constructed with bias = false.
  const Tensor& bias() const { return bias_; }

 private:
  Options opts_;
  Tensor weight_;  // (out_channels, in_channels / groups, kH, kW)
  Tensor bias_;    // (out_channels) or undefined
};

}  // namespace zae::nn
