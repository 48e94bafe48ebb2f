// Autocast: mixed precision by op, as torch.autocast does. Inside an autocast::Guard
// with a low dtype (bfloat16 or float16) on this thread:
//   - matmul, linear, conv1d/conv2d cast their float32 inputs to the low dtype (the
//     kernels accumulate in float32) and return the low dtype;
//   - softmax, log_softmax, layer_norm, the losses and the reductions (sum, mean, var,
//     norm, logsumexp) cast low-precision inputs up to float32 and return float32;
//   - every other op runs in the dtype of its inputs.
// The casts are ordinary differentiable ops, so gradients flow back into the float32
// parameters (master weights) as float32. Backward passes run with autocast suspended
// (their formulas use the dtypes the forward saved).
// Invariants: guards nest and restore the previous state; the state is per thread;
// float64 tensors are never touched; with no guard active every function here is a no-op.
#pragma once

#include "engine/dtype.h"
#include "engine/tensor.h"

namespace zae::autocast {

/// Whether an autocast region is active on this thread (and not suspended).
bool enabled();
/// The active low dtype (float32 when not enabled).
DType low_dtype();

/// RAII: autocast to `low` (bfloat16 or float16; float32 = a region without autocast).
class Guard {
 public:
  explicit Guard(DType low);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  DType previous_;
  bool previous_suspended_;
};

/// RAII: no autocast in this scope (backward passes, optimizer steps).
class Suspend {
 public:
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  bool previous_;
};

/// For the low-precision ops: `t` cast to low_dtype() when enabled and t is float32.
Tensor to_low(const Tensor& t);
/// For the float32 ops: `t` cast to float32 when enabled and t is bfloat16 or float16.
Tensor to_float(const Tensor& t);

}  // namespace zae::autocast
