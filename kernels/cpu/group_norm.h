// CPU group normalisation over dense (N, C, S) tensors: the C channels form G groups
// of K = C / G consecutive channels, and each (n, group) block of D = K * S elements
// (contiguous in memory) is normalised on its own (PyTorch's group_norm).
//
// Invariants:
// - x, y, g, dx are dense (N, C, S); weight, bias, dweight, dbias are dense (C) and
//   apply per channel; mean and rstd are (N, G) in acc_t<T> (float for Half/BFloat16).
//   Null weight/bias mean the identity affine; null backward outputs are not computed.
// - Forward: mean = sum(x) / D, var = sum((x - mean)^2) / D (two passes, accumulated in
//   double), rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * weight[c] + bias[c].
// - Backward, with xhat = (x - mean) * rstd and gw = g * weight[c]:
//   dx = rstd * (gw - mean_D(gw) - xhat * mean_D(gw * xhat)),
//   dweight[c] = sum_{n,s}(g * xhat), dbias[c] = sum_{n,s}(g). Outputs are overwritten.
// - Each group and each channel is reduced by one thread in a fixed order, so results
//   are bitwise independent of the thread count.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// y = group_norm(x); writes mean and rstd (N, G) for the backward.
template <class T>
void group_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t N,
                        int64_t C, int64_t S, int64_t G, double eps);

/// Gradients from the upstream g and the saved mean/rstd. Any of dx, dweight, dbias may be null.
template <class T>
void group_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, int64_t G);

}  // namespace zae::kernels::cpu
