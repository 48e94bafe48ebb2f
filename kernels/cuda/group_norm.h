// CUDA group normalisation over dense (N, C, S) tensors: the twin of
// kernels/cpu/group_norm.h (same contract: G groups of K = C / G consecutive channels,
// each (n, group) block of D = K * S contiguous elements normalised on its own).
//
// Invariants:
// - x, y, g, dx dense (N, C, S); weight, bias, dweight, dbias dense (C) in T; mean and
//   rstd (N, G) in acc_t<T>. Null weight / bias are the identity affine; null backward
//   outputs are not computed; outputs are overwritten.
// - Forward: one block per group; two passes for the statistics (sum, then the sum of
//   squared deviations), both accumulated in double, then the write:
//   y = (x - mean) * rstd * weight[c] + bias[c] in acc_t<T>.
// - Backward: (1) per-row sums over s of g and g * (x - mean) in double, for the N * C
//   rows, into `row_sums` (2, N, C); (2) dx per group from those sums,
//   dx = rstd * (g * w - mean_D(g * w) - (x - mean) * rstd^2 * mean_D(g * w * (x - mean)));
//   (3) dweight[c] = sum_n row_gx[n, c] * rstd[n, c / K], dbias[c] = sum_n row_g[n, c],
//   n in order. Every reduction has a fixed order: deterministic, no atomics.
// - Pointers are device pointers of the current device; nothing synchronizes.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

// cudaStream_t without <cuda_runtime.h>, so plain C++ (the engine ops) can include this.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace zae::kernels::cuda {

/// y = group_norm(x); writes mean and rstd (N, G) for the backward.
template <class T>
void group_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t N,
                        int64_t C, int64_t S, int64_t G, double eps, cudaStream_t stream);

/// Gradients from the upstream g and the saved mean / rstd; any of dx, dweight, dbias
/// may be null. `row_sums`: 2 * N * C doubles of device scratch.
template <class T>
void group_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, int64_t G, double* row_sums,
                         cudaStream_t stream);

}  // namespace zae::kernels::cuda
