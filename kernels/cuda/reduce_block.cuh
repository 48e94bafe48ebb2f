// Device-side building blocks shared by the reduction-family CUDA kernels (reduce,
// softmax, layer_norm, cross_entropy): widening loads and narrowing stores for the
// 16-bit floats, warp shuffles of small trivially copyable states, fixed-order
// reductions of a state over a group of threads, and launch-shape helpers.
//
// Invariants:
// - Every reduction here combines in an order fixed by the launch shape alone
//   (shfl_down trees inside warps, then fixed shared-memory trees), so results are
//   bitwise reproducible run to run. There are no floating-point atomics.
// - Group widths are powers of two. A "row group" is the bx threads of a block that
//   share threadIdx.y (bx <= 32: a warp segment; bx > 32: whole warps); a "column
//   group" is the by threads that share threadIdx.x.
// - Helpers that touch shared memory contain __syncthreads(): every thread of the
//   block must call them (threads without work pass an identity state).
// - Conversions: Half and BFloat16 widen to float and narrow with round-to-nearest-
//   even, bit-identical to kernels/numeric.h for every non-NaN value.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/numeric.h"

namespace zae::kernels::cuda::detail {

// ---- conversions ----------------------------------------------------------------

/// x widened to its compute type (float for Half / BFloat16).
template <class T>
__device__ __forceinline__ acc_t<T> to_acc(T x) {
  return static_cast<acc_t<T>>(x);
}
template <>
__device__ __forceinline__ float to_acc<Half>(Half x) {
  return __half2float(__ushort_as_half(x.bits));
}
template <>
__device__ __forceinline__ float to_acc<BFloat16>(BFloat16 x) {
  return __uint_as_float(static_cast<uint32_t>(x.bits) << 16);
}

/// v narrowed to T (round to nearest even; a double goes through float for 16-bit T,
/// as the CPU kernels do).
template <class T, class A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (std::is_same_v<T, Half>) {
    return Half::from_bits(__half_as_ushort(__float2half_rn(static_cast<float>(v))));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(static_cast<float>(v))));
  } else {
    return static_cast<T>(v);
  }
}

// ---- math in the compute type -----------------------------------------------------

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return log(v); }
__device__ __forceinline__ float sqrt_of(float v) { return sqrtf(v); }
__device__ __forceinline__ double sqrt_of(double v) { return sqrt(v); }
__device__ __forceinline__ float abs_of(float v) { return fabsf(v); }
__device__ __forceinline__ double abs_of(double v) { return fabs(v); }
__device__ __forceinline__ float pow_of(float v, float p) { return powf(v, p); }
__device__ __forceinline__ double pow_of(double v, double p) { return pow(v, p); }

template <class A>
__device__ __forceinline__ bool is_nan_of(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}

template <class A>
__device__ __forceinline__ A infinity_of() {
  if constexpr (std::is_same_v<A, float>)
    return __int_as_float(0x7f800000);
  else
    return __longlong_as_double(0x7ff0000000000000LL);
}

template <class A>
__device__ __forceinline__ bool is_inf_of(A v) {
  return v == infinity_of<A>() || v == -infinity_of<A>();
}

// ---- running (max, sum of exp) -------------------------------------------------------

/// A running max m and s = sum of exp(x - m) over the values seen (m = -inf, s = 0:
/// none). s becomes NaN exactly when a NaN was seen; +inf and -inf values are exact
/// (an element equal to the max adds 1).
template <class A>
struct MaxSum {
  A m;
  A s;
};

template <class A>
__device__ __forceinline__ MaxSum<A> max_sum_init() {
  return MaxSum<A>{-infinity_of<A>(), A(0)};
}

template <class A>
__device__ __forceinline__ void max_sum_add(MaxSum<A>& st, A a) {
  if (a > st.m) {
    st.s = st.s * exp_of(st.m - a) + A(1);
    st.m = a;
  } else if (a == st.m) {
    st.s += A(1);
  } else {
    st.s += exp_of(a - st.m);  // NaN for a NaN a
  }
}

template <class A>
__device__ __forceinline__ MaxSum<A> max_sum_merge(const MaxSum<A>& a, const MaxSum<A>& b) {
  const A m = a.m > b.m ? a.m : b.m;
  const A sa = a.m == m ? a.s : a.s * exp_of(a.m - m);
  const A sb = b.m == m ? b.s : b.s * exp_of(b.m - m);
  return MaxSum<A>{m, sa + sb};
}

/// log(sum(exp(x))) from a final state: NaN if a NaN was seen, the max itself when it
/// is infinite (all -inf or nothing: -inf; a +inf: +inf), else m + log(s).
template <class A>
__device__ __forceinline__ A max_sum_logsumexp(const MaxSum<A>& st) {
  if (is_nan_of(st.s)) return st.s;
  if (is_inf_of(st.m)) return st.m;
  return st.m + log_of(st.s);
}

// ---- sums ---------------------------------------------------------------------------

/// Two running sums reduced together (e.g. sum(g * w) and sum(g * w * xhat)).
template <class A>
struct Pair {
  A a;
  A b;
};

/// x + y: the combine of a plain sum.
template <class A>
struct Plus {
  __device__ A operator()(A x, A y) const { return x + y; }
};

/// Componentwise x + y: the combine of a Pair of sums.
template <class A>
struct PairPlus {
  __device__ Pair<A> operator()(const Pair<A>& x, const Pair<A>& y) const { return Pair<A>{x.a + y.a, x.b + y.b}; }
};

// ---- shuffles and group reductions ---------------------------------------------------

/// __shfl_down_sync over the whole warp for any trivially copyable S (word by word).
template <class S>
__device__ __forceinline__ S shfl_down(const S& v, unsigned offset, int width) {
  static_assert(sizeof(S) % 4 == 0 && std::is_trivially_copyable_v<S>, "shuffled states are 4-byte words");
  constexpr int kWords = static_cast<int>(sizeof(S) / 4);
  int w[kWords];
  memcpy(w, &v, sizeof(S));
#pragma unroll
  for (int i = 0; i < kWords; ++i) w[i] = __shfl_down_sync(0xffffffffu, w[i], offset, width);
  S out;
  memcpy(&out, w, sizeof(S));
  return out;
}

/// __shfl_sync from lane `src` of each width-wide segment, for any trivially copyable S.
template <class S>
__device__ __forceinline__ S shfl_from(const S& v, int src, int width) {
  constexpr int kWords = static_cast<int>(sizeof(S) / 4);
  int w[kWords];
  memcpy(w, &v, sizeof(S));
#pragma unroll
  for (int i = 0; i < kWords; ++i) w[i] = __shfl_sync(0xffffffffu, w[i], src, width);
  S out;
  memcpy(&out, w, sizeof(S));
  return out;
}

/// Combines v over the bx threads of each row group (block (bx, by), bx a power of two
/// <= 1024, blockDim.x * blockDim.y a multiple of 32). The result is valid in the
/// thread with threadIdx.x == 0. `smem` holds blockDim.y * max(1, bx / 32) states.
template <class S, class Combine>
__device__ __forceinline__ S row_group_reduce(S v, Combine combine, int bx, S* smem) {
  const int width = bx < 32 ? bx : 32;
  for (int off = width / 2; off > 0; off >>= 1) v = combine(v, shfl_down(v, static_cast<unsigned>(off), width));
  if (bx <= 32) return v;
  const int nwarps = bx / 32, warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  S* row = smem + threadIdx.y * nwarps;
  __syncthreads();  // an earlier call may still be reading smem
  if (lane == 0) row[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = row[lane & (nwarps - 1)];  // lanes past nwarps load a copy; their segments are unused
    for (int off = nwarps / 2; off > 0; off >>= 1) v = combine(v, shfl_down(v, static_cast<unsigned>(off), nwarps));
  }
  return v;
}

/// row_group_reduce, then the result handed to every thread of the row group.
template <class S, class Combine>
__device__ __forceinline__ S row_group_allreduce(S v, Combine combine, int bx, S* smem) {
  v = row_group_reduce(v, combine, bx, smem);
  if (bx <= 32) return shfl_from(v, 0, bx);
  __syncthreads();  // the warp-0 reads of smem above are done
  if (threadIdx.x == 0) smem[threadIdx.y] = v;
  __syncthreads();
  return smem[threadIdx.y];
}

/// Combines v over the by threads of each column group (block (bx, by), by a power of
/// two) with a shared-memory tree. The result is valid where threadIdx.y == 0.
/// `smem` holds bx * by states.
template <class S, class Combine>
__device__ __forceinline__ S column_group_reduce(S v, Combine combine, int bx, int by, S* smem) {
  const int tid = static_cast<int>(threadIdx.y) * bx + static_cast<int>(threadIdx.x);
  __syncthreads();  // an earlier call may still be reading smem
  smem[tid] = v;
  __syncthreads();
  for (int s = by / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.y) < s) smem[tid] = combine(smem[tid], smem[tid + s * bx]);
    __syncthreads();
  }
  return smem[threadIdx.x];
}

// ---- host-side launch helpers ---------------------------------------------------------

/// The smallest power of two >= n (1 for n <= 1).
inline int64_t ceil_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Launch shape of the kernels that hand each row of n elements to one row group:
/// bx lanes per row (a warp segment for n <= 1024: a warp per row, or a sub-warp for
/// n <= 32; 64..1024 threads for longer rows), by rows per block, `blocks` blocks.
struct RowShape {
  int bx = 1;
  int by = 1;
  int64_t blocks = 0;
  /// Bytes of shared memory row_group_allreduce needs for a state of `state_bytes`.
  size_t smem(size_t state_bytes) const { return state_bytes * static_cast<size_t>(by) * (bx > 32 ? bx / 32 : 1); }
};

inline RowShape row_shape(int64_t rows, int64_t n) {
  int64_t bx = 32;
  if (n <= 32)
    bx = ceil_pow2(n);
  else if (n > 1024)
    bx = ceil_pow2(ceil_div(n, 16));
  bx = bx < 1 ? 1 : (bx > 1024 ? 1024 : bx);
  RowShape s;
  s.bx = static_cast<int>(bx);
  s.by = static_cast<int>(bx >= 256 ? 1 : 256 / bx);
  s.blocks = ceil_div(rows, s.by);
  return s;
}

/// Streaming multiprocessors of the current device (cached per device).
inline int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // zero-initialised (static storage)
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= kMaxDevices) dev = 0;
  int n = cache[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    if (n <= 0) n = 1;
    cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace zae::kernels::cuda::detail
