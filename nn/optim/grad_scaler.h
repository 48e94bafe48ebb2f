// GradScaler: dynamic loss scaling for float16 training, as torch.amp.GradScaler.
// float16 gradients underflow to zero when small; multiplying the loss by a large
// scale S before backward lifts them into float16's range, and dividing the float32
// master gradients by S before the optimizer step restores their value. When a step's
// gradients hold an inf or a NaN (S was too large: something overflowed), the step is
// skipped and S is cut; after growth_interval clean steps in a row S is raised again.
//
//   optim::GradScaler scaler;                     // S = 65536
//   for (...) {
//     opt.zero_grad();
//     Tensor loss = ...;                          // forward (autocast float16)
//     scaler.scale(loss).backward();              // gradients are S times too large
//     scaler.unscale_(opt);                       // optional: true gradients, e.g. to clip
//     nn::clip_grad_norm_(opt.parameters(), 1.0);
//     scaler.step(opt);                           // opt.step() unless an inf/NaN was found
//     scaler.update();                            // S *= backoff or (sometimes) growth
//   }
//
// The math is PyTorch's, operation by operation:
// - S is held as a float32 value (PyTorch keeps it in a float32 tensor): init_scale is
//   rounded to float32, and update() computes S * factor in float64 and rounds it to
//   float32 (_amp_update_scale_). get_scale() returns that float32 value as a double.
// - scale(loss) = loss * S, an ordinary autograd op in loss's dtype.
// - unscale_: inv = float32(1 / float64(S)) (the reciprocal in float64, then rounded to
//   float32, as PyTorch's `_scale.double().reciprocal().float()`); each gradient element
//   g becomes g * inv computed in float32 for float32 and bfloat16 gradients (bfloat16:
//   float32(g) * inv rounded back to bfloat16) and in float64 for float64 gradients,
//   and is left as is when inv == 1 (_amp_foreach_non_finite_check_and_unscale_).
//   float16 gradients are refused, as in PyTorch ("keep float32 master weights").
//   A gradient element that is inf or NaN before unscaling marks the step found_inf.
// - update(): with found_inf, S = float32(S * backoff_factor) and the growth tracker
//   goes to 0; else the tracker counts the clean step, and when it reaches
//   growth_interval, S = float32(S * growth_factor) if that is finite (else S stays)
//   and the tracker goes to 0.
//
// Invariants:
// - S is finite and > 0 (a float32 value); 0 <= growth_tracker (and < growth_interval
//   unless a loaded state said otherwise: then the next clean step grows S).
// - Per optimizer and per step (between update() calls) the stages are
//   ready -> unscaled -> stepped: unscale_ at most once and never after step, step at
//   most once (it unscales first if unscale_ was not called). update() needs at least one
//   optimizer whose gradients were checked, and resets every optimizer to ready.
// - A disabled scaler is a no-op: scale returns the loss itself, unscale_ and update do
//   nothing, step just calls opt.step(); get_scale() is 1 and the tracker 0.
// - Failed calls change nothing (bad options, a second unscale_, a float16 gradient, a
//   bad state), except that step() / update() failing because no gradient was checked
//   return the optimizers that had none to ready (nothing was unscaled), so a retry
//   after backward works.
//
// Deviations from PyTorch, all in states PyTorch does not reach or reaches only by
// misuse: (1) unscale_/step do not require a prior scale() call (PyTorch creates its
// scale tensor lazily there and asserts otherwise); (2) a loaded growth tracker >=
// growth_interval grows S at the next clean step (PyTorch compares with ==; its own state
// dicts never hold such a value); (3) when repeated backoffs have driven S so small that
// 1/S overflows float32 (S underflowed: every step kept producing inf/NaN), unscale_ fails
// with a clear error instead of writing inf/NaN gradients; (4) errors are zae::Error.
// The scaler reads found_inf on the host in unscale_ (one device sync per call; PyTorch
// syncs in step()). Not thread-safe: one scaler belongs to one training loop.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "engine/tensor.h"
#include "nn/optim/optimizer.h"

namespace zae::optim {

/// GradScaler's options (torch.amp.GradScaler's defaults).
struct GradScalerOptions {
  /// The first scale S (must be finite, > 0, and stay so when rounded to float32).
  double init_scale = 65536.0;
  /// S *= growth_factor after growth_interval clean steps in a row (finite, > 1).
  double growth_factor = 2.0;
  /// S *= backoff_factor after a step with inf/NaN gradients (0 < backoff_factor < 1).
  double backoff_factor = 0.5;
  /// Clean steps in a row before S grows (>= 1).
  int64_t growth_interval = 2000;
  /// false: every call is a no-op (scale returns the loss, step just steps).
  bool enabled = true;
};

class GradScaler {
 public:
  /// Validates `options` (errors name the bad value). Options are checked even when disabled.
  explicit GradScaler(GradScalerOptions options = {});

  /// loss * S (a recorded graph op, in loss's dtype, on its device); `loss` itself when
  /// disabled. loss must be a defined floating tensor. S is applied in loss's dtype, so a
  /// float16 loss overflows once S > 65504: keep losses float32 (autocast does).
  Tensor scale(const Tensor& loss) const;

  /// Divides every gradient of `opt`'s parameters by S in place (multiplies by
  /// float32(1/S); see the file comment) and records whether any element was inf or NaN.
  /// Parameters without a gradient are skipped. Errors: a second call for `opt` before
  /// update(), a call after step(opt), a float16 gradient. One host sync.
  void unscale_(Optimizer& opt);

  /// unscale_(opt) unless already done this step; then opt.step() if no gradient held an
  /// inf/NaN. Returns true when the optimizer stepped, false when the step was skipped
  /// (parameters and optimizer state untouched). Errors: a second call for `opt` before
  /// update(), or no parameter of `opt` has a gradient. Disabled: opt.step(), true.
  bool step(Optimizer& opt);

  /// Backs S off (found_inf) or counts a clean step and grows S every growth_interval
  /// clean steps; then forgets this step's per-optimizer state. Error when no optimizer's
  /// gradients were checked (unscale_ / step) since the last update.
  void update();
  /// Sets S = new_scale (rounded to float32; must stay finite and > 0) instead of the
  /// rule above; the growth tracker is unchanged. Forgets this step's state too.
  void update(double new_scale);

  /// S (1 when disabled).
  double get_scale() const;
  /// Clean steps since the last backoff or growth (0 when disabled).
  int64_t growth_tracker() const;
  /// Whether any gradient checked since the last update() held an inf or NaN.
  bool found_inf() const;
  bool enabled() const { return options_.enabled; }
  const GradScalerOptions& options() const { return options_; }

  /// What a checkpoint saves (PyTorch's state_dict "scale" and "_growth_tracker"; the
  /// factors and interval are options). A disabled scaler's state is {1, 0}.
  struct State {
    double scale = 65536.0;
    int64_t growth_tracker = 0;
  };
  State state() const;
  /// Restores S and the tracker (validated: S finite and > 0 as a float32, tracker >= 0;
  /// errors name the values and change nothing). Ignored when disabled, as in PyTorch.
  /// This step's per-optimizer state is kept.
  void load_state(const State& state);

 private:
  enum class Stage { ready, unscaled, stepped };
  struct PerOptimizer {
    Stage stage = Stage::ready;
    bool checked = false;    // at least one gradient was checked for inf/NaN
    bool found_inf = false;  // and one of them held an inf or NaN
  };

  GradScalerOptions options_;
  float scale_ = 65536.0f;
  int64_t growth_tracker_ = 0;
  std::unordered_map<const Optimizer*, PerOptimizer> per_optimizer_;
};

}  // namespace zae::optim
