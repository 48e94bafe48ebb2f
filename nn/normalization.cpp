// Normalisation layers (contract in normalization.h). BatchNorm's forward follows
// torch.nn.modules.batchnorm._BatchNorm: the momentum passed to batch_norm is the
// configured one, or 1 / (num_batches_tracked + 1) for the cumulative average; the
// counter advances only after batch_norm succeeded, so a rejected batch changes no state.
#include "nn/normalization.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/factory.h"
#include "engine/ops/group_norm.h"
#include "engine/ops/nn.h"
#include "nn/init.h"
#include "nn/repr.h"

namespace zae::nn {
// ---- BatchNorm ---------------------------------------------------------------

BatchNormBase::BatchNormBase(std::string type_name, const Options& opts) : Layer(std::move(type_name)), opts_(opts) {
  ZAE_CHECK(opts.num_features > 0, this->type_name(), ": num_features must be positive, got ", opts.num_features);
  ZAE_CHECK(opts.eps >= 0.0, this->type_name(), ": eps must be non-negative, got ", opts.eps);
  const int64_t C = opts.num_features;
  weight_ = register_parameter("weight", opts.affine ? ones({C}) : Tensor());
  bias_ = register_parameter("bias", opts.affine ? zeros({C}) : Tensor());
  const bool track = opts.track_running_stats;
  running_mean_ = register_buffer("running_mean", track ? zeros({C}) : Tensor());
  running_var_ = register_buffer("running_var", track ? ones({C}) : Tensor());
  num_batches_tracked_ = register_buffer("num_batches_tracked", track ? zeros({}, {.dtype = DType::int64}) : Tensor());
}

void BatchNormBase::reset_running_stats() {
  if (!opts_.track_running_stats) return;
  init::zeros_(running_mean_);
  init::ones_(running_var_);
  init::zeros_(num_batches_tracked_);
}

void BatchNormBase::reset_parameters() {
  reset_running_stats();
  if (!opts_.affine) return;
  init::ones_(weight_);
  init::zeros_(bias_);
}

Tensor BatchNormBase::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), type_name(), ": undefined input");
  check_input_dim(x);
  ZAE_CHECK(x.shape()[1] == opts_.num_features, type_name(), "(", opts_.num_features, "): input of shape ",
            shape_str(x.shape()), " has ", x.shape()[1], " channels, expected ", opts_.num_features);
  const bool update = is_training() && opts_.track_running_stats;
  double factor = opts_.momentum.value_or(0.0);
  if (update && !opts_.momentum) factor = 1.0 / (num_batches_tracked_.item() + 1.0);  // cumulative average
  // Batch statistics in training, and in eval when no running statistics are kept.
  const bool batch_stats = is_training() || !opts_.track_running_stats;
  Tensor y = batch_norm(x, running_mean_, running_var_, weight_, bias_, batch_stats, factor, opts_.eps);
  if (update) {
    NoGradGuard no_grad;
    Tensor count = num_batches_tracked_;
    count.add_(1.0);
  }
  return y;
}

std::string BatchNormBase::extra_repr() const {
  return std::to_string(opts_.num_features) + ", eps=" + python_float_repr(opts_.eps) +
         ", momentum=" + (opts_.momentum ? python_float_repr(*opts_.momentum) : std::string("None")) +
         ", affine=" + python_bool_repr(opts_.affine) + ", track_running_stats=" + python_bool_repr(opts_.track_running_stats);
}

void BatchNorm1d::check_input_dim(const Tensor& x) const {
  ZAE_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d: expected 2D or 3D input (N, C) or (N, C, L), got ", x.dim(),
            "D input of shape ", shape_str(x.shape()));
}

void BatchNorm2d::check_input_dim(const Tensor& x) const {
  ZAE_CHECK(x.dim() == 4, "BatchNorm2d: expected 4D input (N, C, H, W), got ", x.dim(), "D input of shape ",
            shape_str(x.shape()));
}

// ---- LayerNorm ---------------------------------------------------------------

LayerNorm::LayerNorm(const Options& opts) : Layer("LayerNorm"), opts_(opts) {
  ZAE_CHECK(!opts.normalized_shape.empty(), "LayerNorm: normalized_shape must have at least one dim");
  for (int64_t s : opts.normalized_shape)
    ZAE_CHECK(s > 0, "LayerNorm: normalized_shape ", shape_str(opts.normalized_shape), " has a non-positive size");
  ZAE_CHECK(opts.eps >= 0.0, "LayerNorm: eps must be non-negative, got ", opts.eps);
  const bool affine = opts.elementwise_affine;
  weight_ = register_parameter("weight", affine ? ones(opts.normalized_shape) : Tensor());
  bias_ = register_parameter("bias", affine && opts.bias ? zeros(opts.normalized_shape) : Tensor());
}

void LayerNorm::reset_parameters() {
  if (weight_.defined()) init::ones_(weight_);
  if (bias_.defined()) init::zeros_(bias_);
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, opts_.normalized_shape, weight_, bias_, opts_.eps); }

AddLayerNormResult LayerNorm::forward_add(const Tensor& x, const Tensor& residual) {
  return add_layer_norm(x, residual, opts_.normalized_shape, weight_, bias_, opts_.eps);
}

std::string LayerNorm::extra_repr() const {
  std::string shape = "(";
  for (size_t i = 0; i < opts_.normalized_shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(opts_.normalized_shape[i]);
  shape += opts_.normalized_shape.size() == 1 ? ",)" : ")";
  return shape + ", eps=" + python_float_repr(opts_.eps) + ", elementwise_affine=" + python_bool_repr(opts_.elementwise_affine);
}

// ---- GroupNorm ---------------------------------------------------------------

GroupNorm::GroupNorm(const Options& opts) : Layer("GroupNorm"), opts_(opts) {
  ZAE_CHECK(opts.num_groups > 0 && opts.num_channels > 0,
            "GroupNorm: num_groups and num_channels must be positive, got ", opts.num_groups, " and ",
            opts.num_channels);
  ZAE_CHECK(opts.num_channels % opts.num_groups == 0, "GroupNorm: num_channels (", opts.num_channels,
            ") must be divisible by num_groups (", opts.num_groups, ")");
  ZAE_CHECK(opts.eps >= 0.0, "GroupNorm: eps must be non-negative, got ", opts.eps);
  weight_ = register_parameter("weight", opts.affine ? ones({opts.num_channels}) : Tensor());
  bias_ = register_parameter("bias", opts.affine ? zeros({opts.num_channels}) : Tensor());
}

void GroupNorm::reset_parameters() {
  if (!opts_.affine) return;
  init::ones_(weight_);
  init::zeros_(bias_);
}

Tensor GroupNorm::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "GroupNorm: undefined input");
  ZAE_CHECK(x.dim() >= 2 && x.shape()[1] == opts_.num_channels, "GroupNorm(", opts_.num_groups, ", ",
            opts_.num_channels, "): expected input of shape (N, ", opts_.num_channels, ", *), got ",
            shape_str(x.shape()));
  return group_norm(x, opts_.num_groups, weight_, bias_, opts_.eps);
}

std::string GroupNorm::extra_repr() const {
  return std::to_string(opts_.num_groups) + ", " + std::to_string(opts_.num_channels) + ", eps=" + python_float_repr(opts_.eps) +
         ", affine=" + python_bool_repr(opts_.affine);
}

}  // namespace zae::nn
