// CPU batch normalisation over dense (N, C, S) tensors: statistics per channel c
// over the N * S elements x[n, c, s] (PyTorch's batch_norm; S = 1 for (N, C) input,
// S = L or H * W for (N, C, L) / (N, C, H, W)).
//
// Invariants:
// - x, y, g, dx are dense (N, C, S); weight, bias, dweight, dbias are dense (C);
//   mean, var and rstd are (C) in acc_t<T> (float for Half/BFloat16). Null weight/bias
//   mean the identity affine (1, 0); null backward outputs are not computed.
// - Forward with compute_stats: mean = sum(x) / M, var = sum((x - mean)^2) / M with
//   M = N * S (two passes, accumulated in double), both written out. Without
//   compute_stats, mean and var are read (the running statistics). Either way
//   rstd = 1 / sqrt(var + eps) is written and y = (x - mean) * rstd * weight + bias.
// - Backward, with xhat = (x - mean) * rstd: dweight = sum(g * xhat), dbias = sum(g)
//   (per channel); dx = weight * rstd * (g - sum(g) / M - xhat * sum(g * xhat) / M)
//   when the statistics came from the batch (training), dx = weight * rstd * g when
//   they were constants (eval). Outputs are overwritten, never read.
// - Every channel is reduced by one thread in a fixed order (n outer, s inner), so the
//   results are bitwise independent of the thread count. M = 0 gives zero gradients.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// y = batch_norm(x); with compute_stats writes the batch mean and biased var, else reads them.
template <class T>
void batch_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* var, acc_t<T>* rstd,
                        bool compute_stats, int64_t N, int64_t C, int64_t S, double eps);

/// Gradients from the upstream g and the mean/rstd the forward used. Any of dx, dweight, dbias may be null.
template <class T>
void batch_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, bool batch_stats, int64_t N, int64_t C, int64_t S);

}  // namespace zae::kernels::cpu
