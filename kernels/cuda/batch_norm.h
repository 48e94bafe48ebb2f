// CUDA batch normalisation over dense (N, C, S) tensors: the twin of
// kernels/cpu/batch_norm.h. Training forward / backward and the inference forward run
// on cuDNN (spatial mode on an (N, C, S, 1) view); the eval-mode backward (statistics
// held constant, which cuDNN has no call for) and the small per-channel helpers are ours.
//
// Invariants:
// - x, y, g, dx are dense (N, C, S) with N * C * S <= INT_MAX (cuDNN's descriptors);
//   weight / bias / dweight / dbias are dense (C) in T; every per-channel statistic or
//   parameter handed to cuDNN (scale, shift, mean, var, rstd, running stats) is dense
//   (C) in P = acc_t<T> (float for float / Half / BFloat16, double for double), which is
//   cuDNN's parameter type. Pointers are device pointers of the current device, 16-byte
//   aligned for the cuDNN calls.
// - Statistics: mean and biased variance over the M = N * S values of a channel;
//   rstd = 1 / sqrt(var + eps). cuDNN's running update is
//   running = (1 - momentum) * running + momentum * batch, with the unbiased batch
//   variance (M / (M - 1)), which is the CPU op's (and PyTorch's) convention.
// - M = 0: the training forward writes mean 0 and rstd 1 / sqrt(eps) and leaves the
//   running statistics alone; gradients of weight and bias are 0.
// - Outputs are overwritten; the eval backward's sums accumulate in double in a fixed
//   order (bitwise reproducible). Nothing synchronizes.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

// cudaStream_t without <cuda_runtime.h>, so plain C++ (the engine ops) can include this.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace zae::kernels::cuda {

/// scale / shift (C) in acc_t<T> from weight / bias (C) in T; null weight -> 1, null bias -> 0.
template <class T>
void batch_norm_params(const T* weight, const T* bias, acc_t<T>* scale, acc_t<T>* shift, int64_t C,
                       cudaStream_t stream);

/// rstd (C) = 1 / sqrt(var + eps), computed in double as the CPU does.
template <class A>
void batch_norm_rstd(const A* var, A* rstd, int64_t C, double eps, cudaStream_t stream);

/// Training forward: y = (x - mean) * rstd * scale + shift with the batch statistics;
/// writes save_mean and save_rstd (C). When running_mean / running_var are non-null they
/// are updated with `momentum` (first set to 0 when zero_running_first: with momentum 1
/// they then receive the batch mean and the unbiased batch variance).
template <class T>
void batch_norm_forward_training(const T* x, const acc_t<T>* scale, const acc_t<T>* shift, T* y, acc_t<T>* save_mean,
                                 acc_t<T>* save_rstd, acc_t<T>* running_mean, acc_t<T>* running_var, double momentum,
                                 bool zero_running_first, int64_t N, int64_t C, int64_t S, double eps,
                                 cudaStream_t stream);

/// Inference forward: y = (x - mean) / sqrt(var + eps) * scale + shift with the given statistics.
template <class T>
void batch_norm_forward_inference(const T* x, const acc_t<T>* scale, const acc_t<T>* shift, const acc_t<T>* mean,
                                  const acc_t<T>* var, T* y, int64_t N, int64_t C, int64_t S, double eps,
                                  cudaStream_t stream);

/// Training backward from the saved mean / rstd: dx (required), and dweight / dbias (may
/// be null) in T. `param_grads`: 2 * C elements of P scratch (cuDNN always computes both).
template <class T>
void batch_norm_backward_training(const T* g, const T* x, const acc_t<T>* scale, const acc_t<T>* save_mean,
                                  const acc_t<T>* save_rstd, T* dx, T* dweight, T* dbias, acc_t<T>* param_grads,
                                  int64_t N, int64_t C, int64_t S, double eps, cudaStream_t stream);

/// Eval backward (constant statistics): dx = weight * rstd * g, dweight = sum(g * (x - mean)) * rstd,
/// dbias = sum(g) per channel. weight null = 1; any output may be null.
template <class T>
void batch_norm_backward_eval(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight,
                              T* dx, T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, cudaStream_t stream);

}  // namespace zae::kernels::cuda
