// CPU reduction kernels. Every kernel sees one problem shape: a contiguous input
// viewed as (outer, k, inner), reduced over k into a contiguous output (outer, inner).
// The engine permutes and copies so that the reduced dims form that one run.
//
// Invariants:
// - Results do not depend on the thread count: the work is cut into tasks whose
//   boundaries depend on the shape only, and per-task partials combine in k order.
// - Floating sums accumulate in acc_t<T> over short blocks (16 lanes on rows,
//   a row of `inner` partials on columns) and combine the blocks in double.
// - Integral and bool sums are exact in int64 (wrapping on overflow, like torch).
// - max/min: NaN is the extremum (it propagates); on ties the first index wins.
// - max/min/argmax/argmin/amax/amin and the inf-norm need k >= 1 (the engine rejects
//   empty reductions); sum gives 0, mean and var NaN, logsumexp -inf, norm 0 at k == 0.
#pragma once

#include <cstdint>

namespace zae::kernels::cpu {

/// The shape of a reduction: input (outer, k, inner), output (outer, inner), both contiguous.
struct ReduceDims {
  int64_t outer = 1;
  int64_t k = 1;
  int64_t inner = 1;
};

/// out = sum over k. T: float, double, Half, BFloat16.
template <class T>
void reduce_sum(const T* x, ReduceDims d, T* out);

/// out = sum over k in int64. T: int32_t, int64_t, uint8_t, bool.
template <class T>
void reduce_sum_integral(const T* x, ReduceDims d, int64_t* out);

/// out = sum / k (NaN when k == 0). Floating T.
template <class T>
void reduce_mean(const T* x, ReduceDims d, T* out);

/// out = sum((x - mean)^2) / max(0, k - correction), two-pass. Floating T.
template <class T>
void reduce_var(const T* x, ReduceDims d, int64_t correction, T* out);

/// Values of the maximum / minimum over k (k >= 1). T: every dtype.
template <class T>
void reduce_amax(const T* x, ReduceDims d, T* out);
template <class T>
void reduce_amin(const T* x, ReduceDims d, T* out);

/// The first maximum / minimum over k (k >= 1): its value (if `values` is not null)
/// and its position in [0, k) (if `indices` is not null). T: every dtype.
template <class T>
void reduce_argmax(const T* x, ReduceDims d, T* values, int64_t* indices);
template <class T>
void reduce_argmin(const T* x, ReduceDims d, T* values, int64_t* indices);

/// out = log(sum(exp(x - m))) + m with m the max over k (m = 0 where it is infinite,
/// as torch does). Floating T.
template <class T>
void reduce_logsumexp(const T* x, ReduceDims d, T* out);

/// p-norm over k: p == 2 (sqrt of the sum of squares), 1, +inf (max |x|, k >= 1),
/// or any other p > 0 (sum(|x|^p)^(1/p)). Floating T.
template <class T>
void reduce_norm(const T* x, ReduceDims d, double p, T* out);

}  // namespace zae::kernels::cpu
