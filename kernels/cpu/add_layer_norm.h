// CPU fused residual add + layer normalisation over the last N elements of M dense
// rows: sum = x + residual, y = layer_norm(sum) (PyTorch's layer_norm: biased variance,
// eps inside the square root), the contract of kernels/cpu/layer_norm.h applied to sum.
//
// Invariants:
// - x, residual, sum, y, g_out, g_sum, d_sum are dense (M, N); weight, bias, dweight,
//   dbias are dense (N); mean and rstd are (M) in acc_t<T>. Null weight / bias mean the
//   identity affine; null outputs of the backward are not computed; outputs are
//   overwritten, never read.
// - Forward: sum_ij = T(acc(x_ij) + acc(residual_ij)) is rounded to T first, and the
//   statistics and y are computed from the rounded sum exactly as layer_norm_forward
//   does, so (sum, y, mean, rstd) are bitwise those of add followed by layer_norm.
// - Backward, with xhat = (sum - mean) * rstd and gw = g_out * weight:
//   d_sum = g_sum + rstd * (gw - mean_N(gw) - xhat * mean_N(gw * xhat)) (g_sum null: 0),
//   rounded to T once; dweight = sum_M(g_out * xhat), dbias = sum_M(g_out). For float and
//   double this is bitwise layer_norm_backward's dx plus g_sum.
// - Column sums are reduced in a fixed order (independent of the thread count).
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// sum = x + residual and y = layer_norm(sum) row-wise in one pass over the inputs;
/// writes mean and rstd (M) for the backward.
template <class T>
void add_layer_norm_forward(const T* x, const T* residual, const T* weight, const T* bias, T* sum, T* y,
                            acc_t<T>* mean, acc_t<T>* rstd, int64_t M, int64_t N, double eps);

/// Gradients from g_out (the gradient of y; required) and g_sum (the gradient that reached
/// sum directly; may be null) with the saved sum / mean / rstd. Any of d_sum, dweight,
/// dbias may be null. d_sum is the gradient of both x and residual.
template <class T>
void add_layer_norm_backward(const T* g_out, const T* g_sum, const T* sum, const acc_t<T>* mean,
                             const acc_t<T>* rstd, const T* weight, T* d_sum, T* dweight, T* dbias, int64_t M,
                             int64_t N);

}  // namespace zae::kernels::cpu
