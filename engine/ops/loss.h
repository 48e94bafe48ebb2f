// Loss functions (autograd-aware), as torch.nn.functional: the stateless core of the
// nn/loss.h modules. cross_entropy lives in engine/ops/nn.h with `Reduction`.
// Invariants: input and target of the elementwise losses have exactly the same shape,
// dtype and device (no silent broadcasting); reduction none keeps the elementwise
// shape, mean divides by the element count (nll_loss: by the summed target weight),
// sum adds everything. Mean over zero elements is NaN, as in PyTorch.
#pragma once

#include <cstdint>

#include "engine/ops/nn.h"
#include "engine/tensor.h"

namespace zae {

struct NllLossOptions {
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
  Tensor weight{};  ///< optional per-class weights (C); no gradient flows to it
};
/// Negative log-likelihood of class-index targets: log_probs (C), (N, C) or
/// (N, C, d1, ...), target int64/int32 of the same shape without the class dim.
/// loss_i = -weight[t_i] * log_probs[i, t_i] (0 where t_i == ignore_index); mean
/// divides by the summed weight of the non-ignored targets.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NllLossOptions& opts = {});

/// (input - target)^2. Gradients flow to input and target.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// |input - target| (gradient sign(input - target), 0 at equality).
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// Huber-like: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target);
/// beta = 0 is l1_loss; negative beta is an error.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                      double beta = 1.0);

struct BceWithLogitsOptions {
  Reduction reduction = Reduction::mean;
  Tensor weight{};      ///< optional rescaling, broadcastable to the input's shape
  Tensor pos_weight{};  ///< optional weight of positive examples, broadcastable to the input (e.g. (C))
};
/// Binary cross entropy on logits x with targets y in [0, 1], computed stably as
/// (1 - y) x + (1 + (pw - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)), times weight.
/// Gradients flow to the logits and the target (not to weight or pos_weight).
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const BceWithLogitsOptions& opts = {});

}  // namespace zae
