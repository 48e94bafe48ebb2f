// CUDA reduction launchers: the device twins of kernels/cpu/reduce.h, on the same
// problem shape (a contiguous input viewed as (outer, k, inner), reduced over k into a
// contiguous output (outer, inner)) and with the same semantics (NaN propagation,
// first index on ties, values at k == 0).
//
// Invariants:
// - Pointers are device pointers on the current device; work is queued on `stream`
//   and nothing synchronises.
// - Deterministic: the combination order depends only on the shape and the device's
//   multiprocessor count; no floating-point atomics. Long reductions with few outputs
//   are split over blocks whose partial states a second kernel folds in split order.
// - `workspace` is device scratch of at least reduce_workspace_bytes(d) bytes (may be
//   null when that is 0); it is only used by the work queued here.
// - Accumulation: float for float32 / float16 / bfloat16, double for float64, wrapping
//   int64 for the integer sums. var is a one-pass Welford with Chan's merge;
//   logsumexp is a one-pass running (max, sum of exp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/reduce.h"

namespace zae::kernels::cuda {

using ReduceDims = cpu::ReduceDims;

/// Bytes of scratch that any launcher below needs for shape `d` on the current device.
size_t reduce_workspace_bytes(ReduceDims d);

/// out = sum over k. T: float, double, Half, BFloat16.
template <class T>
void reduce_sum(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream);

/// out = sum over k in int64 (wrapping). T: int32_t, int64_t, uint8_t, bool.
template <class T>
void reduce_sum_integral(const T* x, ReduceDims d, int64_t* out, void* workspace, cudaStream_t stream);

/// out = sum / k (NaN when k == 0). Floating T.
template <class T>
void reduce_mean(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream);

/// out = sum((x - mean)^2) / max(0, k - correction). Floating T.
template <class T>
void reduce_var(const T* x, ReduceDims d, int64_t correction, T* out, void* workspace, cudaStream_t stream);

/// The first maximum / minimum over k (k >= 1): its value (when `values` is not null)
/// and its position in [0, k) (when `indices` is not null). T: every dtype.
template <class T>
void reduce_argmax(const T* x, ReduceDims d, T* values, int64_t* indices, void* workspace, cudaStream_t stream);
template <class T>
void reduce_argmin(const T* x, ReduceDims d, T* values, int64_t* indices, void* workspace, cudaStream_t stream);

/// out = log(sum(exp(x))) (NaN if any x is NaN, +inf if the max is +inf, -inf when
/// every x is -inf or k == 0). Floating T.
template <class T>
void reduce_logsumexp(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream);

/// p-norm over k: 2, 1, +inf (k >= 1) or any other p > 0. Floating T.
template <class T>
void reduce_norm(const T* x, ReduceDims d, double p, T* out, void* workspace, cudaStream_t stream);

}  // namespace zae::kernels::cuda
