// CUDA layer normalisation over the last N elements of M dense rows: the device twins
// of kernels/cpu/layer_norm.h, with the same contract (biased variance, two-pass
// statistics in acc_t, eps inside the square root, null weight/bias = identity affine,
// null backward outputs not computed, outputs overwritten and never read).
//
// Invariants:
// - Forward: one row group per row (a warp for N <= 1024), three passes over the row
//   (sum, sum of squared deviations, write); mean and rstd (M) are written in acc_t.
// - Backward: dx from one row group per row (one pass for the two row sums, one to
//   write). dweight / dbias are deterministic two-stage column reductions: blocks of
//   (32 columns x a chunk of rows) write per-chunk partial sums to the workspace, and
//   a second kernel adds the chunks of each column in chunk order. No atomics.
// - Pointers are device pointers on the current device; nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cuda {

/// y = layer_norm(x) row-wise; writes mean and rstd (M) for the backward.
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t M,
                        int64_t N, double eps, cudaStream_t stream);

/// Bytes of scratch layer_norm_backward needs for (M, N) rows of T on the current device
/// (0 when no dweight / dbias is requested).
template <class T>
size_t layer_norm_backward_workspace_bytes(int64_t M, int64_t N, bool need_weight_or_bias);

/// Gradients from the upstream g and the saved mean / rstd; any of dx, dweight, dbias may
/// be null. `workspace`: layer_norm_backward_workspace_bytes bytes of device scratch.
template <class T>
void layer_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t M, int64_t N, void* workspace, cudaStream_t stream);

namespace detail {

/// layer_norm_backward's dx pass with an optional addend (add_layer_norm's d_sum, which
/// layer_norm.cu and add_layer_norm.cu share): dx = g_add + d layer_norm(x) / dx (g),
/// added in acc_t before the one rounding; a null g_add gives exactly layer_norm's dx.
/// Requires M > 0 and N > 0; `what` names the op in a too-large-grid error.
template <class T>
void layer_norm_backward_dx(const T* g, const T* g_add, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd,
                            const T* weight, T* dx, int64_t M, int64_t N, const char* what, cudaStream_t stream);

}  // namespace detail

}  // namespace zae::kernels::cuda
