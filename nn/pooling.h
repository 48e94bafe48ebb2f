// Pooling layers, as torch.nn.MaxPool2d, AvgPool2d and AdaptiveAvgPool2d. No
// parameters or buffers; forward delegates to engine/ops/pooling.h.
// Invariants: sizes keep the form they were given in (one value or a pair), so
// extra_repr prints them as PyTorch does ("kernel_size=2" vs "kernel_size=(2, 3)");
// an unset stride means stride = kernel_size (and prints so). Options are validated at
// construction (positive sizes, padding <= kernel / 2); input shapes at forward.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "engine/ops/pooling.h"
#include "nn/module.h"

namespace zae::nn {

/// Max over sliding windows of (N, C, H, W) or (C, H, W) input.
class MaxPool2d : public Layer {
 public:
  struct Options {
    IntPair kernel_size = 0;
    std::optional<IntPair> stride = std::nullopt;  ///< unset: kernel_size
    IntPair padding = 0;
    IntPair dilation = 1;
    bool ceil_mode = false;
  };
  explicit MaxPool2d(const Options& opts);
  explicit MaxPool2d(IntPair kernel_size) : MaxPool2d(Options{.kernel_size = kernel_size}) {}

  Tensor forward(const Tensor& x) override;
  /// The output and the int64 flat (h * W + w) argmax of each window.
  std::pair<Tensor, Tensor> forward_with_indices(const Tensor& x);
  /// "kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False".
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;  // stride filled in
};

/// Mean over sliding windows of (N, C, H, W) or (C, H, W) input.
class AvgPool2d : public Layer {
 public:
  struct Options {
    IntPair kernel_size = 0;
    std::optional<IntPair> stride = std::nullopt;  ///< unset: kernel_size
    IntPair padding = 0;
    bool ceil_mode = false;
    bool count_include_pad = true;
    std::optional<int64_t> divisor_override = std::nullopt;
  };
  explicit AvgPool2d(const Options& opts);
  explicit AvgPool2d(IntPair kernel_size) : AvgPool2d(Options{.kernel_size = kernel_size}) {}

  Tensor forward(const Tensor& x) override;
  /// "kernel_size=2, stride=2, padding=0" (PyTorch shows no more).
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;  // stride filled in
};

/// Mean over output_size adaptive bins of (N, C, H, W) or (C, H, W) input.
class AdaptiveAvgPool2d : public Layer {
 public:
  struct Options {
    IntPair output_size = 0;
  };
  explicit AdaptiveAvgPool2d(const Options& opts);
  explicit AdaptiveAvgPool2d(IntPair output_size) : AdaptiveAvgPool2d(Options{.output_size = output_size}) {}

  Tensor forward(const Tensor& x) override;
  /// "output_size=(3, 4)" or "output_size=1".
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

}  // namespace zae::nn
