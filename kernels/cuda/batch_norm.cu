// CUDA batch_norm (contract in batch_norm.h): cuDNN's spatial batch normalisation on an
// (N, C, S, 1) view for the training forward / backward and the inference forward; our
// kernels for the parameter conversions, rstd and the eval-mode backward.
#include "kernels/cuda/batch_norm.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "engine/cuda/cudnn.h"
#include "kernels/cuda/dnn_common.cuh"

namespace zae::kernels::cuda {

namespace {

using dnn::load;
using dnn::store;

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    params_kernel(const T* __restrict__ weight, const T* __restrict__ bias, acc_t<T>* __restrict__ scale,
                  acc_t<T>* __restrict__ shift, int64_t C) {
  using Acc = acc_t<T>;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  scale[c] = weight != nullptr ? load(weight[c]) : Acc(1);
  shift[c] = bias != nullptr ? load(bias[c]) : Acc(0);
}

template <class A>
__global__ void __launch_bounds__(kThreads)
    rstd_kernel(const A* __restrict__ var, A* __restrict__ rstd, int64_t C, double eps) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  rstd[c] = static_cast<A>(1.0 / sqrt(static_cast<double>(var[c]) + eps));
}

/// dweight / dbias (C) in T from cuDNN's parameter gradients (2, C) in acc_t<T>.
template <class T>
__global__ void __launch_bounds__(kThreads)
    store_param_grads_kernel(const acc_t<T>* __restrict__ pg, T* __restrict__ dweight, T* __restrict__ dbias,
                             int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  if (dweight != nullptr) dweight[c] = store<T>(pg[c]);
  if (dbias != nullptr) dbias[c] = store<T>(pg[C + c]);
}

/// dx = rstd[c] * weight[c] * g over dense (N, C, S), `total` = N * C * S.
template <class T>
__global__ void __launch_bounds__(kThreads)
    eval_dx_kernel(const T* __restrict__ g, const acc_t<T>* __restrict__ rstd, const T* __restrict__ weight,
                   T* __restrict__ dx, int64_t C, int64_t S, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t c = (i / S) % C;
    const Acc k = weight != nullptr ? rstd[c] * load(weight[c]) : rstd[c];
    dx[i] = store<T>(k * load(g[i]));
  }
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

template <class T>
constexpr cudnnDataType_t bn_data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDNN_DATA_FLOAT;
  if constexpr (std::is_same_v<T, double>) return CUDNN_DATA_DOUBLE;
  if constexpr (std::is_same_v<T, Half>) return CUDNN_DATA_HALF;
  if constexpr (std::is_same_v<T, BFloat16>) return CUDNN_DATA_BFLOAT16;
}

// alpha = 1 / beta = 0 in cuDNN's scaling type (double for float64 data).
template <class T>
struct Blend {
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
  S one = S(1);
  S zero = S(0);
};

// x / y / g / dx as (N, C, S, 1) and the derived per-channel parameter layout.
struct BnDescs {
  zae::cuda::TensorDescriptor x, param;
};

template <class T>
void describe(BnDescs& d, int64_t N, int64_t C, int64_t S, const char* what) {
  ZAE_CHECK(N * C * S <= INT_MAX, what, " (cuda): the input has ", N * C * S,
            " elements, more than cuDNN's batch normalisation takes (", INT_MAX, ")");
  d.x.set(bn_data_type<T>(), N, C, S, 1);
  CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(d.param.get(), d.x.get(), CUDNN_BATCHNORM_SPATIAL));
}

template <class T>
void zero(T* p, int64_t n, cudaStream_t stream) {
  if (p != nullptr && n > 0) CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(T), stream));
}

}  // namespace

template <class T>
void batch_norm_params(const T* weight, const T* bias, acc_t<T>* scale, acc_t<T>* shift, int64_t C,
                       cudaStream_t stream) {
  if (C == 0) return;
  params_kernel<T><<<blocks_for(C), kThreads, 0, stream>>>(weight, bias, scale, shift, C);
  CUDA_CHECK(cudaGetLastError());
}

template <class A>
void batch_norm_rstd(const A* var, A* rstd, int64_t C, double eps, cudaStream_t stream) {
  if (C == 0) return;
  rstd_kernel<A><<<blocks_for(C), kThreads, 0, stream>>>(var, rstd, C, eps);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void batch_norm_forward_training(const T* x, const acc_t<T>* scale, const acc_t<T>* shift, T* y, acc_t<T>* save_mean,
                                 acc_t<T>* save_rstd, acc_t<T>* running_mean, acc_t<T>* running_var, double momentum,
                                 bool zero_running_first, int64_t N, int64_t C, int64_t S, double eps,
                                 cudaStream_t stream) {
  if (C == 0) return;
  if (N * S == 0) {  // no values: mean 0, variance 0; running statistics untouched
    zero(save_mean, C, stream);
    batch_norm_rstd(save_mean, save_rstd, C, eps, stream);
    return;
  }
  BnDescs d;
  describe<T>(d, N, C, S, "batch_norm");
  if (zero_running_first) {
    zero(running_mean, C, stream);
    zero(running_var, C, stream);
  }
  const Blend<T> blend;
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      zae::cuda::cudnn_handle(stream), CUDNN_BATCHNORM_SPATIAL, &blend.one, &blend.zero, d.x.get(), x, d.x.get(), y,
      d.param.get(), scale, shift, momentum, running_mean, running_var, eps, save_mean, save_rstd));
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void batch_norm_forward_inference(const T* x, const acc_t<T>* scale, const acc_t<T>* shift, const acc_t<T>* mean,
                                  const acc_t<T>* var, T* y, int64_t N, int64_t C, int64_t S, double eps,
                                  cudaStream_t stream) {
  if (N * C * S == 0) return;
  BnDescs d;
  describe<T>(d, N, C, S, "batch_norm");
  const Blend<T> blend;
  CUDNN_CHECK(cudnnBatchNormalizationForwardInference(zae::cuda::cudnn_handle(stream), CUDNN_BATCHNORM_SPATIAL,
                                                      &blend.one, &blend.zero, d.x.get(), x, d.x.get(), y,
                                                      d.param.get(), scale, shift, mean, var, eps));
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void batch_norm_backward_training(const T* g, const T* x, const acc_t<T>* scale, const acc_t<T>* save_mean,
                                  const acc_t<T>* save_rstd, T* dx, T* dweight, T* dbias, acc_t<T>* param_grads,
                                  int64_t N, int64_t C, int64_t S, double eps, cudaStream_t stream) {
  if (C == 0) return;
  if (N * S == 0) {  // empty sums; dx has no elements
    zero(dweight, C, stream);
    zero(dbias, C, stream);
    return;
  }
  BnDescs d;
  describe<T>(d, N, C, S, "batch_norm backward");
  const Blend<T> blend;
  CUDNN_CHECK(cudnnBatchNormalizationBackward(zae::cuda::cudnn_handle(stream), CUDNN_BATCHNORM_SPATIAL, &blend.one,
                                              &blend.zero, &blend.one, &blend.zero, d.x.get(), x, d.x.get(), g,
                                              d.x.get(), dx, d.param.get(), scale, param_grads, param_grads + C, eps,
                                              save_mean, save_rstd));
  if (dweight != nullptr || dbias != nullptr)
    store_param_grads_kernel<T><<<blocks_for(C), kThreads, 0, stream>>>(param_grads, dweight, dbias, C);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void batch_norm_backward_eval(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight,
                              T* dx, T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, cudaStream_t stream) {
  if (C == 0) return;
  const int64_t total = N * C * S;
  if (dx != nullptr && total > 0)
    eval_dx_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(g, rstd, weight, dx, C, S, total);
  if (dweight != nullptr || dbias != nullptr) {
    ZAE_CHECK(C <= INT_MAX, "batch_norm backward (cuda): ", C, " channels exceed a grid");
    dnn::channel_grad_sums_kernel<T><<<static_cast<unsigned>(C), dnn::kBlock, 0, stream>>>(
        g, dweight != nullptr ? x : nullptr, mean, rstd, dweight, dbias, N, C, S);
  }
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_BATCH_NORM(T)                                                                                      \
  template void batch_norm_params<T>(const T*, const T*, acc_t<T>*, acc_t<T>*, int64_t, cudaStream_t);             \
  template void batch_norm_forward_training<T>(const T*, const acc_t<T>*, const acc_t<T>*, T*, acc_t<T>*,          \
                                               acc_t<T>*, acc_t<T>*, acc_t<T>*, double, bool, int64_t, int64_t,    \
                                               int64_t, double, cudaStream_t);                                     \
  template void batch_norm_forward_inference<T>(const T*, const acc_t<T>*, const acc_t<T>*, const acc_t<T>*,       \
                                                const acc_t<T>*, T*, int64_t, int64_t, int64_t, double,            \
                                                cudaStream_t);                                                     \
  template void batch_norm_backward_training<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*,              \
                                                const acc_t<T>*, T*, T*, T*, acc_t<T>*, int64_t, int64_t, int64_t, \
                                                double, cudaStream_t);                                             \
  template void batch_norm_backward_eval<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*,    \
                                            T*, T*, int64_t, int64_t, int64_t, cudaStream_t);
ZAE_CUDA_BATCH_NORM(float)
ZAE_CUDA_BATCH_NORM(double)
ZAE_CUDA_BATCH_NORM(Half)
ZAE_CUDA_BATCH_NORM(BFloat16)
#undef ZAE_CUDA_BATCH_NORM
template void batch_norm_rstd<float>(const float*, float*, int64_t, double, cudaStream_t);
template void batch_norm_rstd<double>(const double*, double*, int64_t, double, cudaStream_t);

}  // namespace zae::kernels::cuda
