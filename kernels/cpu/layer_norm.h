// CPU layer normalisation over the last N elements of M dense rows (PyTorch's
// layer_norm: biased variance, eps inside the square root).
//
// Invariants:
// - x, y, g, dx are dense (M, N); weight, bias, dweight, dbias are dense (N); mean and
//   rstd are (M) in acc_t<T> (float for Half/BFloat16). Null weight/bias mean the
//   identity affine (1, 0); null outputs of the backward are not computed.
// - Forward: mean = sum(x) / N, var = sum((x - mean)^2) / N (two passes, in acc_t),
//   rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * weight + bias.
// - Backward, with xhat = (x - mean) * rstd and gw = g * weight:
//   dx = rstd * (gw - mean_N(gw) - xhat * mean_N(gw * xhat)),
//   dweight = sum_M(g * xhat), dbias = sum_M(g). Outputs are overwritten, never read.
// - Column sums are reduced in a fixed order (independent of the thread count),
//   so results are bitwise reproducible.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// y = layer_norm(x) row-wise; writes mean and rstd (M) for the backward.
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd,
                        int64_t M, int64_t N, double eps);

/// Gradients from the upstream g and the saved mean/rstd. Any of dx, dweight, dbias may be null.
template <class T>
void layer_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t M, int64_t N);

}  // namespace zae::kernels::cpu
