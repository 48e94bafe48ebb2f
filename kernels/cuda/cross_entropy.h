// CUDA fused softmax cross-entropy over rows of logits: the device twins of
// kernels/cpu/cross_entropy.h (same formulas, class weights, label smoothing and
// ignore_index), plus the target validation that cross_entropy and nll_loss run first.
//
// Invariants:
// - One row group per row (a warp for C <= 1024): the forward reads each row once for
//   its logsumexp (running max and sum of exp) and, with label smoothing, once more for
//   the smoothing sum; it stores lse (M) and never materialises probabilities. The
//   backward recomputes p = exp(x - lse) and writes d_logits in one pass per row.
// - Row sums for the sum / mean reductions are taken in double by a fixed two-stage
//   tree (deterministic, no atomics); the result and the gradient scale of the mean
//   (1 / summed weight) stay on the device, so forward and backward never synchronise.
// - find_invalid_target is the one call that synchronises: the host needs its answer
//   to raise a clear error before any kernel indexes with a bad target.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/cross_entropy.h"
#include "kernels/numeric.h"

namespace zae::kernels::cuda {

using CrossEntropyParams = cpu::CrossEntropyParams;

/// Position of the first value of target (n, contiguous) outside [0, classes) that is
/// not *ignore_index (when given), or -1 when all are valid. `scratch`: one device
/// int64. Synchronises `stream` (the host reads the answer).
template <class I>
int64_t find_invalid_target(const I* target, int64_t n, int64_t classes, const int64_t* ignore_index, int64_t* scratch,
                            cudaStream_t stream);

/// logits (M, C), target (M), weight (C) or null. Writes lse (M), loss (M) when not null,
/// and, when row_loss is not null, each row's loss and target weight (M doubles each,
/// 0 for ignored rows) for cross_entropy_reduce.
template <class T, class I>
void cross_entropy_forward(const T* logits, const I* target, const T* weight, const CrossEntropyParams& p,
                           acc_t<T>* lse, T* loss, double* row_loss, double* row_weight, cudaStream_t stream);

/// Doubles of scratch cross_entropy_reduce needs for `rows` rows.
int64_t cross_entropy_reduce_scratch(int64_t rows);

/// out (one T) = sum of row_loss (mean == false) or sum of row_loss / sum of row_weight
/// (mean; NaN when the weights sum to 0); grad_scale (one double) = 1 or 1 / sum of
/// row_weight. `scratch`: cross_entropy_reduce_scratch(rows) device doubles.
template <class T>
void cross_entropy_reduce(const double* row_loss, const double* row_weight, int64_t rows, bool mean, T* out,
                          double* grad_scale, double* scratch, cudaStream_t stream);

/// d_logits (M, C) from logits (M, C), target (M), weight (C) or null and lse (M);
/// g_r = grad[r * grad_stride] * (*grad_scale) (grad_scale null: 1; grad_stride 0: one
/// scalar for all rows). `scratch`: one device acc_t<T> (the weight total; used only
/// when weight is not null).
template <class T, class I>
void cross_entropy_backward(const T* logits, const I* target, const T* weight, const acc_t<T>* lse, const T* grad,
                            int64_t grad_stride, const double* grad_scale, const CrossEntropyParams& p, T* d_logits,
                            acc_t<T>* scratch, cudaStream_t stream);

}  // namespace zae::kernels::cuda
