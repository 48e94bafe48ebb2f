// CUDA group_norm forward and backward (contract in group_norm.h). Group kernels loop
// their blocks over the (n, group) blocks of D elements; row sums give each row of S
// elements to a warp (short rows) or a whole block (long rows).
#include "kernels/cuda/group_norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dnn_common.cuh"

namespace zae::kernels::cuda {

namespace {

using dnn::block_sum;
using dnn::kBlock;
using dnn::load;
using dnn::store;

constexpr int kWarps = kBlock / 32;
constexpr int64_t kLongRow = 2048;  // rows longer than this get a block each in the row sums

template <class T>
__global__ void __launch_bounds__(kBlock)
    group_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias,
                              T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                              int64_t groups_total, int64_t C, int64_t S, int64_t G, double eps) {
  using Acc = acc_t<T>;
  __shared__ double smem[kWarps];
  __shared__ double stat;        // the group's mean, in double
  __shared__ Acc mean_rstd[2];  // the group's mean and rstd as stored
  const int64_t K = C / G, D = K * S;
  for (int64_t ng = blockIdx.x; ng < groups_total; ng += gridDim.x) {
    const T* xg = x + ng * D;  // (K, S)
    T* yg = y + ng * D;        // (K, S)
    double v[1] = {0.0};
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) v[0] += static_cast<double>(load(xg[i]));
    block_sum(v, smem);
    if (threadIdx.x == 0) stat = D > 0 ? v[0] / static_cast<double>(D) : 0.0;
    __syncthreads();
    const double mu = stat;
    v[0] = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const double d = static_cast<double>(load(xg[i])) - mu;
      v[0] += d * d;
    }
    block_sum(v, smem);
    if (threadIdx.x == 0) {
      const double var = D > 0 ? v[0] / static_cast<double>(D) : 0.0;
      mean_rstd[0] = static_cast<Acc>(mu);
      mean_rstd[1] = static_cast<Acc>(1.0 / sqrt(var + eps));
      mean[ng] = mean_rstd[0];
      rstd[ng] = mean_rstd[1];
    }
    __syncthreads();
    const Acc m = mean_rstd[0], r = mean_rstd[1];
    const int64_t c0 = (ng % G) * K;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const int64_t c = c0 + i / S;
      const Acc alpha = weight != nullptr ? r * load(weight[c]) : r;
      const Acc beta = bias != nullptr ? load(bias[c]) : Acc(0);
      yg[i] = store<T>((load(xg[i]) - m) * alpha + beta);
    }
    __syncthreads();  // the next group rewrites stat / mean_rstd
  }
}

/// row_sums (2, N, C): [0] sum_s g, [1] sum_s g * (x - mean[n, c / K]) for each row (n, c).
/// kLanes threads per row: 32 (a warp, kWarps rows per block) or kBlock (one row per block).
template <class T, int kLanes>
__global__ void __launch_bounds__(kBlock)
    group_norm_row_sums_kernel(const T* __restrict__ g, const T* __restrict__ x, const acc_t<T>* __restrict__ mean,
                               double* __restrict__ row_sums, int64_t rows, int64_t C, int64_t S, int64_t G) {
  __shared__ double smem[2 * kWarps];
  constexpr int kRowsPerBlock = kBlock / kLanes;
  const int lane = static_cast<int>(threadIdx.x) % kLanes, slot = static_cast<int>(threadIdx.x) / kLanes;
  const int64_t K = C / G;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; base < rows;
       base += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t r = base + slot;
    double v[2] = {0.0, 0.0};
    if (r < rows) {
      const double mu = static_cast<double>(mean[(r / C) * G + (r % C) / K]);
      const T* gr = g + r * S;  // (S)
      const T* xr = x + r * S;  // (S)
      for (int64_t s = lane; s < S; s += kLanes) {
        const double gv = static_cast<double>(load(gr[s]));
        v[0] += gv;
        v[1] += gv * (static_cast<double>(load(xr[s])) - mu);
      }
    }
    if constexpr (kLanes == 32) {
#pragma unroll
      for (int k = 0; k < 2; ++k)
        for (int off = 16; off > 0; off >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
    } else {
      block_sum(v, smem);
    }
    if (lane == 0 && r < rows) {
      row_sums[r] = v[0];
      row_sums[rows + r] = v[1];
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    group_norm_dx_kernel(const T* __restrict__ g, const T* __restrict__ x, const acc_t<T>* __restrict__ mean,
                         const acc_t<T>* __restrict__ rstd, const T* __restrict__ weight,
                         const double* __restrict__ row_sums, T* __restrict__ dx, int64_t groups_total, int64_t C,
                         int64_t S, int64_t G) {
  using Acc = acc_t<T>;
  __shared__ double smem[2 * kWarps];
  __shared__ double coef[2];
  const int64_t K = C / G, D = K * S, rows = groups_total / G * C;
  const double inv_d = 1.0 / static_cast<double>(D);
  for (int64_t ng = blockIdx.x; ng < groups_total; ng += gridDim.x) {
    const int64_t n = ng / G, c0 = (ng % G) * K;
    double v[2] = {0.0, 0.0};  // sum(g * w), sum(g * w * (x - mean)) over the group
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const double w = weight != nullptr ? static_cast<double>(load(weight[c0 + k])) : 1.0;
      v[0] += w * row_sums[n * C + c0 + k];
      v[1] += w * row_sums[rows + n * C + c0 + k];
    }
    block_sum(v, smem);
    if (threadIdx.x == 0) {
      const double r = static_cast<double>(rstd[ng]);
      coef[0] = v[0] * inv_d;          // mean_D(g * w)
      coef[1] = v[1] * inv_d * r * r;  // mean_D(g * w * xhat) * rstd
    }
    __syncthreads();
    const Acc a = static_cast<Acc>(coef[0]), proj = static_cast<Acc>(coef[1]);
    const Acc m = mean[ng], ra = rstd[ng];
    const int64_t off = ng * D;  // the group's (K, S) block
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const int64_t c = c0 + i / S;
      const Acc w = weight != nullptr ? load(weight[c]) : Acc(1);
      dx[off + i] = store<T>(ra * (load(g[off + i]) * w - a - (load(x[off + i]) - m) * proj));
    }
    __syncthreads();  // the next group's block_sum reuses smem / coef
  }
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    group_norm_wb_kernel(const acc_t<T>* __restrict__ rstd, const double* __restrict__ row_sums,
                         T* __restrict__ dweight, T* __restrict__ dbias, int64_t N, int64_t C, int64_t G) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t K = C / G, rows = N * C;
  double sw = 0.0, sb = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    sw += row_sums[rows + n * C + c] * static_cast<double>(rstd[n * G + c / K]);
    sb += row_sums[n * C + c];
  }
  if (dweight != nullptr) dweight[c] = store<T>(sw);
  if (dbias != nullptr) dbias[c] = store<T>(sb);
}

unsigned grid_of(int64_t blocks) { return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20)); }

}  // namespace

template <class T>
void group_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t N,
                        int64_t C, int64_t S, int64_t G, double eps, cudaStream_t stream) {
  const int64_t groups_total = N * G;
  if (groups_total == 0 || C == 0) return;
  group_norm_forward_kernel<T>
      <<<grid_of(groups_total), kBlock, 0, stream>>>(x, weight, bias, y, mean, rstd, groups_total, C, S, G, eps);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void group_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, int64_t G, double* row_sums,
                         cudaStream_t stream) {
  if (C == 0) return;
  const int64_t rows = N * C, groups_total = N * G;
  if (rows > 0) {
    if (S > kLongRow) {
      group_norm_row_sums_kernel<T, kBlock><<<grid_of(rows), kBlock, 0, stream>>>(g, x, mean, row_sums, rows, C, S, G);
    } else {
      group_norm_row_sums_kernel<T, 32>
          <<<grid_of((rows + kWarps - 1) / kWarps), kBlock, 0, stream>>>(g, x, mean, row_sums, rows, C, S, G);
    }
  }
  if (dx != nullptr && rows > 0 && S > 0)
    group_norm_dx_kernel<T>
        <<<grid_of(groups_total), kBlock, 0, stream>>>(g, x, mean, rstd, weight, row_sums, dx, groups_total, C, S, G);
  if (dweight != nullptr || dbias != nullptr)
    group_norm_wb_kernel<T>
        <<<grid_of((C + kBlock - 1) / kBlock), kBlock, 0, stream>>>(rstd, row_sums, dweight, dbias, N, C, G);
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_GROUP_NORM(T)                                                                                     \
  template void group_norm_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, acc_t<T>*, int64_t, int64_t,    \
                                      int64_t, int64_t, double, cudaStream_t);                                     \
  template void group_norm_backward<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*, T*, T*, \
                                       int64_t, int64_t, int64_t, int64_t, double*, cudaStream_t);
ZAE_CUDA_GROUP_NORM(float)
ZAE_CUDA_GROUP_NORM(double)
ZAE_CUDA_GROUP_NORM(Half)
ZAE_CUDA_GROUP_NORM(BFloat16)
#undef ZAE_CUDA_GROUP_NORM

}  // namespace zae::kernels::cuda
