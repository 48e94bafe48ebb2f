// CUDA fused residual add + layer normalisation over the last N elements of M dense
// rows: the device twins of kernels/cpu/add_layer_norm.h, with the same contract
// (sum rounded to T before the statistics, two-pass statistics in acc_t, eps inside the
// square root, null weight / bias = identity affine, null backward outputs not computed,
// outputs overwritten and never read).
//
// Invariants:
// - Forward: one row group per row (detail::row_shape); the first pass writes sum and
//   reduces its row sum, the variance and output passes read back the elements of sum
//   the same thread wrote. mean and rstd (M) are written in acc_t.
// - Backward: d_sum = g_sum + layer_norm's dx, from one row group per row (one pass for
//   the two row sums, one to write); dweight / dbias are layer_norm_backward's
//   deterministic two-stage column reductions over (g_out, sum). No atomics.
// - Pointers are device pointers on the current device; nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cuda {

/// sum = x + residual and y = layer_norm(sum) row-wise; writes mean and rstd (M).
template <class T>
void add_layer_norm_forward(const T* x, const T* residual, const T* weight, const T* bias, T* sum, T* y,
                            acc_t<T>* mean, acc_t<T>* rstd, int64_t M, int64_t N, double eps, cudaStream_t stream);

/// Bytes of scratch add_layer_norm_backward needs (0 when no dweight / dbias is requested).
template <class T>
size_t add_layer_norm_backward_workspace_bytes(int64_t M, int64_t N, bool need_weight_or_bias);

/// Gradients from g_out (required) and g_sum (may be null) with the saved sum / mean / rstd;
/// any of d_sum, dweight, dbias may be null. `workspace`: the bytes above, device scratch.
template <class T>
void add_layer_norm_backward(const T* g_out, const T* g_sum, const T* sum, const acc_t<T>* mean,
                             const acc_t<T>* rstd, const T* weight, T* d_sum, T* dweight, T* dbias, int64_t M,
                             int64_t N, void* workspace, cudaStream_t stream);

}  // namespace zae::kernels::cuda
