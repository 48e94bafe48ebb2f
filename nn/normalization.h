// Normalisation layers, as torch.nn: BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm.
// Each delegates its forward to the functional op (engine/ops/batch_norm.h,
// group_norm.h, nn.h's layer_norm).
// Invariants: affine parameters are "weight" (ones) and "bias" (zeros), registered as
// None when disabled; BatchNorm's buffers are "running_mean" (zeros), "running_var"
// (ones) and "num_batches_tracked" (int64 0-dim), registered as None without
// track_running_stats; these are PyTorch's state-dict keys. BatchNorm updates its
// running statistics only in training mode, after a successful forward.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/ops/nn.h"
#include "nn/module.h"

namespace zae::nn {

/// What BatchNorm1d and BatchNorm2d share: parameters, buffers and the forward.
class BatchNormBase : public Layer {
 public:
  struct Options {
    int64_t num_features = 0;
    double eps = 1e-5;
    /// Weight of the newest batch in the running statistics; nullopt = cumulative
    /// moving average (1 / num_batches_tracked).
    std::optional<double> momentum = 0.1;
    bool affine = true;
    bool track_running_stats = true;
  };

  /// Training (or no running stats): batch statistics, updating the running ones;
  /// eval: the running statistics.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  /// running_mean = 0, running_var = 1, num_batches_tracked = 0.
  void reset_running_stats();
  /// reset_running_stats(), weight = 1, bias = 0.
  void reset_parameters();

  const Options& options() const { return opts_; }
  /// Undefined without affine.
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  /// Undefined without track_running_stats.
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }

 protected:
  BatchNormBase(std::string type_name, const Options& opts);
  /// Throws unless x has a rank this layer accepts.
  virtual void check_input_dim(const Tensor& x) const = 0;

 private:
  Options opts_;
  Tensor weight_;               // (C) or undefined
  Tensor bias_;                 // (C) or undefined
  Tensor running_mean_;         // (C) or undefined
  Tensor running_var_;          // (C) or undefined
  Tensor num_batches_tracked_;  // int64 0-dim or undefined
};

/// Batch normalisation of (N, C) or (N, C, L) input over N (and L).
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(const Options& opts) : BatchNormBase("BatchNorm1d", opts) {}
  explicit BatchNorm1d(int64_t num_features) : BatchNorm1d(Options{.num_features = num_features}) {}

 protected:
  void check_input_dim(const Tensor& x) const override;
};

/// Batch normalisation of (N, C, H, W) input over N, H and W.
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(const Options& opts) : BatchNormBase("BatchNorm2d", opts) {}
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(Options{.num_features = num_features}) {}

 protected:
  void check_input_dim(const Tensor& x) const override;
};

/// Layer normalisation over the trailing normalized_shape dims.
class LayerNorm : public Layer {
 public:
  struct Options {
    Shape normalized_shape;
    double eps = 1e-5;
    bool elementwise_affine = true;
    bool bias = true;  ///< only with elementwise_affine
  };
  explicit LayerNorm(const Options& opts);
  /// Normalises over the last dim of size normalized_size (other shapes: Options).
  explicit LayerNorm(int64_t normalized_size) : LayerNorm(Options{.normalized_shape = {normalized_size}}) {}

  Tensor forward(const Tensor& x) override;
  /// The residual add before this norm, fused with it (engine's add_layer_norm): returns
  /// {sum = x + residual, out = forward(sum)} from one kernel; gradients flow into both.
  AddLayerNormResult forward_add(const Tensor& x, const Tensor& residual);
  std::string extra_repr() const override;
  /// weight = 1, bias = 0.
  void reset_parameters();

  const Options& options() const { return opts_; }
  /// normalized_shape-shaped, or undefined without elementwise_affine (bias also without bias).
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Options opts_;
  Tensor weight_;
  Tensor bias_;
};

/// Group normalisation: num_channels split into num_groups groups, each normalised
/// per sample over its channels and all spatial positions.
class GroupNorm : public Layer {
 public:
  struct Options {
    int64_t num_groups = 0;
    int64_t num_channels = 0;
    double eps = 1e-5;
    bool affine = true;
  };
  explicit GroupNorm(const Options& opts);
  GroupNorm(int64_t num_groups, int64_t num_channels)
      : GroupNorm(Options{.num_groups = num_groups, .num_channels = num_channels}) {}

  /// x (N, num_channels, *).
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  /// weight = 1, bias = 0.
  void reset_parameters();

  const Options& options() const { return opts_; }
  /// (num_channels) or undefined without affine.
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Options opts_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace zae::nn
