// CPU multi-tensor optimizer updates: each call updates n_tensors parameters in place
// from their gradients and state buffers (the "multi-tensor apply" shape a fused CUDA
// kernel takes: arrays of raw pointers plus sizes).
//
// Invariants:
// - Tensor i is dense with sizes[i] elements in params[i], grads[i] and each of its
//   state buffers. Parameters and gradients are T; state is acc_t<T> (float for Half /
//   BFloat16, else T), and arithmetic is in acc_t<T>. Gradients are only read.
// - State arrays not used by a configuration may be null (documented per kernel).
// - Work is split over the concatenation of all tensors, so threads balance across and
//   within tensors. Every element is updated independently, so results do not depend
//   on the thread count.
// - The formulas are PyTorch 1.13's single-tensor ones (torch/optim/*.py), operation by
//   operation: with g = maximize ? -grad : grad, "add(x, alpha=a)" is x + a * y, etc.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

struct SgdHyper {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
};

/// SGD: d = g + wd * p; with momentum, buf = fresh ? d : momentum * buf + (1 - dampening) * d,
/// d = nesterov ? d + momentum * buf : buf; p -= lr * d.
/// momentum_buffers may be null when momentum == 0; fresh[i] != 0 marks a buffer that
/// is initialised from d in this step (its first).
template <class T>
void sgd_step(const SgdHyper& h, int n_tensors, T* const* params, const T* const* grads,
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes);

struct AdamHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool amsgrad = false, maximize = false;
  /// AdamW: p *= 1 - lr * weight_decay before the update, instead of g += weight_decay * p.
  bool decoupled_weight_decay = false;
};

/// Adam / AdamW: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
/// (amsgrad: vmax = max(vmax, v), v := vmax), denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
/// p -= lr / (1 - beta1^t) * m / denom. steps[i] = t of tensor i, counted from 1 and
/// already incremented. max_exp_avg_sq may be null unless amsgrad.
template <class T>
void adam_step(const AdamHyper& h, int n_tensors, T* const* params, const T* const* grads, acc_t<T>* const* exp_avg,
               acc_t<T>* const* exp_avg_sq, acc_t<T>* const* max_exp_avg_sq, const double* steps,
               const int64_t* sizes);

struct RmspropHyper {
  double lr = 0, alpha = 0, eps = 0, weight_decay = 0, momentum = 0;
  bool centered = false, maximize = false;
};

/// RMSprop: sq = alpha sq + (1 - alpha) g^2; centered: ga = alpha ga + (1 - alpha) g,
/// avg = sqrt(sq - ga^2) + eps, else avg = sqrt(sq) + eps; momentum > 0:
/// buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg.
/// grad_avg may be null unless centered; momentum_buffer null unless momentum > 0.
template <class T>
void rmsprop_step(const RmspropHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* square_avg, acc_t<T>* const* grad_avg, acc_t<T>* const* momentum_buffer,
                  const int64_t* sizes);

struct AdagradHyper {
  double lr = 0, lr_decay = 0, weight_decay = 0, eps = 0;
  bool maximize = false;
};

/// Adagrad: sum += g^2, p -= clr * g / (sqrt(sum) + eps), clr = lr / (1 + (t - 1) lr_decay)
/// with t = steps[i] (already incremented).
template <class T>
void adagrad_step(const AdagradHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* sum, const double* steps, const int64_t* sizes);

}  // namespace zae::kernels::cpu
