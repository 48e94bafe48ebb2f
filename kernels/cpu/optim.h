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
// - StepExtras (SGD and Adam / AdamW): with master weights, the update of a 16-bit
//   tensor reads and writes its float32 master copy and stores the master rounded to T
//   in the parameter; stochastic rounding (bfloat16 only) follows kernels/optim_math.h.
//   In capturable mode the hyperparameters are read from `hyper` and the step counts
//   from `step_counts` (incremented by the call itself): the same code path as the
//   normal mode, so both give the same bits.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// Optional inputs of sgd_step / adam_step (all off by default).
struct StepExtras {
  /// Per tensor: a float32 master copy (16-bit T only; entries may be null). The update
  /// runs on the master and the parameter receives the master rounded to T.
  float* const* master = nullptr;
  /// bfloat16 parameters are written with stochastic rounding (other dtypes round to
  /// nearest even), from the stream (seed, tensor_ids[i], step, element index).
  bool stochastic_rounding = false;
  uint64_t seed = 0;
  const uint32_t* tensor_ids = nullptr;  ///< per tensor; needed with stochastic_rounding
  /// SGD with stochastic rounding in normal mode: each tensor's step count (already
  /// incremented), which picks the rounding stream. Adam uses its `steps` argument.
  const double* sr_steps = nullptr;
  /// Capturable mode: the hyperparameters (optim_math::AdamSlot / SgdSlot order) are read
  /// from here instead of the Hyper struct (its flags still apply), and ...
  const double* hyper = nullptr;
  /// ... each tensor's step count lives here; the call increments it first and uses
  /// the new value (Adam's bias corrections, the rounding stream). Replaces `steps` /
  /// `sr_steps`; may be null for SGD without stochastic rounding.
  float* const* step_counts = nullptr;
};

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
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes,
              const StepExtras& x = {});

struct AdamHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool amsgrad = false, maximize = false;
  /// AdamW: p *= 1 - lr * weight_decay before the update, instead of g += weight_decay * p.
  bool decoupled_weight_decay = false;
};

/// Adam / AdamW: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
/// (amsgrad: vmax = max(vmax, v), v := vmax), denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
/// p -= lr / (1 - beta1^t) * m / denom. steps[i] = t of tensor i, counted from 1 and
/// already incremented (null in capturable mode). max_exp_avg_sq may be null unless amsgrad.
template <class T>
void adam_step(const AdamHyper& h, int n_tensors, T* const* params, const T* const* grads, acc_t<T>* const* exp_avg,
               acc_t<T>* const* exp_avg_sq, acc_t<T>* const* max_exp_avg_sq, const double* steps,
               const int64_t* sizes, const StepExtras& x = {});

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
