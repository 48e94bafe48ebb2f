// Device-side helpers shared by the conv / pooling / batch-norm / group-norm CUDA
// kernels: element loads and stores with the hardware 16-bit conversions, a fixed-order
// block sum of double accumulators, and the per-channel gradient sums used by the conv
// bias and the batch-norm backward passes.
//
// Invariants:
// - Half / BFloat16 widen exactly to float and narrow with round-to-nearest-even (the
//   same values as kernels/numeric.h's conversions; NaN stays NaN).
// - block_sum combines in an order fixed by the block size alone (warp shuffle trees,
//   then warp results in warp order), so sums are bitwise reproducible run to run.
//   No floating-point atomics anywhere.
// - Every thread of the block must call block_sum (it contains __syncthreads()).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/numeric.h"

namespace zae::kernels::cuda::dnn {

/// Threads per block of the reduction kernels here (a multiple of 32, at most 1024).
inline constexpr int kBlock = 256;

/// x widened to its compute type acc_t<T>.
template <class T>
__device__ __forceinline__ acc_t<T> load(T x) {
  if constexpr (std::is_same_v<T, Half>) {
    return __half2float(__ushort_as_half(x.bits));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return __uint_as_float(static_cast<uint32_t>(x.bits) << 16);
  } else {
    return x;
  }
}

/// v narrowed to T (round to nearest even; a double goes through float for 16-bit T).
template <class T, class A>
__device__ __forceinline__ T store(A v) {
  if constexpr (std::is_same_v<T, Half>) {
    return Half::from_bits(__half_as_ushort(__float2half_rn(static_cast<float>(v))));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(static_cast<float>(v))));
  } else {
    return static_cast<T>(v);
  }
}

/// Sums v[0..K) over the whole block (blockDim.x a multiple of 32, 1-D). The totals are
/// valid in thread 0. `smem` holds K * (blockDim.x / 32) doubles.
template <int K>
__device__ __forceinline__ void block_sum(double (&v)[K], double* smem) {
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
#pragma unroll
  for (int k = 0; k < K; ++k)
    for (int off = 16; off > 0; off >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  __syncthreads();  // an earlier call may still be reading smem
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) smem[k * warps + warp] = v[k];
  }
  __syncthreads();
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      double s = 0.0;
      for (int w = 0; w < warps; ++w) s += smem[k * warps + w];
      v[k] = s;
    }
  }
}

/// One block per channel c of dense (N, C, S) data: d_shift[c] = sum g and, when x is
/// given, d_scale[c] = rstd[c] * sum g * (x - mean[c]) (rstd null: 1), both over (n, s)
/// accumulated in double. Null outputs are not written.
template <class T>
__global__ void __launch_bounds__(kBlock)
    channel_grad_sums_kernel(const T* __restrict__ g, const T* __restrict__ x, const acc_t<T>* __restrict__ mean,
                             const acc_t<T>* __restrict__ rstd, T* __restrict__ d_scale, T* __restrict__ d_shift,
                             int64_t N, int64_t C, int64_t S) {
  __shared__ double smem[2 * (kBlock / 32)];
  const int64_t c = blockIdx.x;
  const int64_t M = N * S;
  const double mu = (x != nullptr && mean != nullptr) ? static_cast<double>(mean[c]) : 0.0;
  double v[2] = {0.0, 0.0};  // (sum g, sum g * (x - mean))
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    const int64_t n = j / S, s = j - n * S;
    const int64_t off = (n * C + c) * S + s;
    const double gv = static_cast<double>(load(g[off]));
    v[0] += gv;
    if (x != nullptr) v[1] += gv * (static_cast<double>(load(x[off])) - mu);
  }
  block_sum(v, smem);
  if (threadIdx.x != 0) return;
  if (d_shift != nullptr) d_shift[c] = store<T>(v[0]);
  if (d_scale != nullptr) d_scale[c] = store<T>(v[1] * (rstd != nullptr ? static_cast<double>(rstd[c]) : 1.0));
}

}  // namespace zae::kernels::cuda::dnn
