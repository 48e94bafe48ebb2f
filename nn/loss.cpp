// Loss modules (contract in loss.h): thin wrappers that keep the options and the
// weight buffers and call the functional losses.
#include "nn/loss.h"

#include "engine/ops/loss.h"

namespace zae::nn {

CrossEntropyLoss::CrossEntropyLoss(const Options& opts) : Loss("CrossEntropyLoss"), opts_(opts) {
  ZAE_CHECK(opts.label_smoothing >= 0.0 && opts.label_smoothing <= 1.0,
            "CrossEntropyLoss: label_smoothing must be in [0, 1], got ", opts.label_smoothing);
  weight_ = register_buffer("weight", opts.weight.defined() ? opts.weight.detach() : Tensor());
  opts_.weight = weight_;
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) {
  return cross_entropy(input, target,
                       CrossEntropyOptions{.ignore_index = opts_.ignore_index,
                                           .label_smoothing = opts_.label_smoothing,
                                           .reduction = opts_.reduction,
                                           .weight = weight_});
}

NLLLoss::NLLLoss(const Options& opts) : Loss("NLLLoss"), opts_(opts) {
  weight_ = register_buffer("weight", opts.weight.defined() ? opts.weight.detach() : Tensor());
  opts_.weight = weight_;
}

Tensor NLLLoss::forward(const Tensor& input, const Tensor& target) {
  return nll_loss(input, target,
                  NllLossOptions{.ignore_index = opts_.ignore_index, .reduction = opts_.reduction, .weight = weight_});
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) { return mse_loss(input, target, opts_.reduction); }

Tensor L1Loss::forward(const Tensor& input, const Tensor& target) { return l1_loss(input, target, opts_.reduction); }

SmoothL1Loss::SmoothL1Loss(const Options& opts) : Loss("SmoothL1Loss"), opts_(opts) {
  ZAE_CHECK(opts.beta >= 0.0, "SmoothL1Loss: beta must be non-negative, got ", opts.beta);
}

Tensor SmoothL1Loss::forward(const Tensor& input, const Tensor& target) {
  return smooth_l1_loss(input, target, opts_.reduction, opts_.beta);
}

BCEWithLogitsLoss::BCEWithLogitsLoss(const Options& opts) : Loss("BCEWithLogitsLoss"), opts_(opts) {
  weight_ = register_buffer("weight", opts.weight.defined() ? opts.weight.detach() : Tensor());
  pos_weight_ = register_buffer("pos_weight", opts.pos_weight.defined() ? opts.pos_weight.detach() : Tensor());
  opts_.weight = weight_;
  opts_.pos_weight = pos_weight_;
}

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) {
  return binary_cross_entropy_with_logits(
      input, target, BceWithLogitsOptions{.reduction = opts_.reduction, .weight = weight_, .pos_weight = pos_weight_});
}

}  // namespace zae::nn
