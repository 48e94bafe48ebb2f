// CPU softmax / log_softmax over one dim of a dense tensor viewed as (outer, K, inner):
// the softmax runs along K for each of the outer * inner lanes.
//
// Invariants:
// - All buffers are dense (row-major) with exactly outer * K * inner elements; the
//   caller makes inputs contiguous. Outputs are write-only (never read first).
// - Forward subtracts the lane maximum before exponentiating, so large logits are
//   stable; arithmetic runs in acc_t<T> (float for Half/BFloat16).
// - A lane whose maximum is -inf (all -inf) yields NaN, as PyTorch does.
// - Backward takes the saved forward OUTPUT y:
//     softmax:     dx = y * (g - sum_K(g * y))
//     log_softmax: dx = g - exp(y) * sum_K(g)
// - inner == 1 (softmax over the last dim) is the hot path: one row per lane,
//   read contiguously; other layouts walk (K, inner) blocks along inner.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// y = softmax(x) (or log_softmax when `log`) along K.  x, y: (outer, K, inner).
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, bool log);

/// dx from the upstream gradient g and the saved output y.  g, y, dx: (outer, K, inner).
template <class T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t outer, int64_t K, int64_t inner, bool log);

}  // namespace zae::kernels::cpu
