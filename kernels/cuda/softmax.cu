// CUDA softmax / log_softmax forward and backward (contract in softmax.h).
// Rows (inner == 1): one row group per row (detail::row_shape); the forward pass keeps
// a running (max, sum of exp) per thread, merges it over the group and writes
// y = exp(x - m) / s or (x - m) - log(s), exactly the CPU twin's formulas. Other
// layouts: one thread per (outer, inner) lane. Loads are issued kUnroll at a time.
#include "kernels/cuda/softmax.h"

#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/reduce_block.cuh"

namespace zae::kernels::cuda {

namespace {

using detail::from_acc;
using detail::MaxSum;
using detail::to_acc;

constexpr int kUnroll = 4;
constexpr int kLaneThreads = 256;  // threads per block in the strided kernels

/// A lane's final (max, sum): an infinite max (all -inf, or a +inf) makes the lane NaN,
/// as on the CPU, where exp(inf - inf) poisons the sum.
template <class A>
__device__ __forceinline__ MaxSum<A> finish_lane(MaxSum<A> st) {
  if (detail::is_inf_of(st.m)) st.s = st.m - st.m;  // inf - inf: NaN
  return st;
}

template <class A>
__device__ __forceinline__ A softmax_value(A v, A m, A inv_sum, A log_sum, bool log_out) {
  return log_out ? (v - m) - log_sum : detail::exp_of(v - m) * inv_sum;
}

template <class T>
__global__ void __launch_bounds__(1024) softmax_rows_forward(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                                             int64_t K, bool log_out, int bx, int by) {
  using A = acc_t<T>;
  using S = MaxSum<A>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  S* smem = reinterpret_cast<S*>(smem_bytes);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < rows;
  const T* xr = x + (valid ? row : 0) * K;  // (K)
  S st = detail::max_sum_init<A>();
  if (valid) {
    int64_t k = threadIdx.x;
    for (; k + (kUnroll - 1) * bx < K; k += kUnroll * bx) {
      A v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = to_acc(xr[k + u * bx]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) detail::max_sum_add(st, v[u]);
    }
    for (; k < K; k += bx) detail::max_sum_add(st, to_acc(xr[k]));
  }
  st = detail::row_group_allreduce(
      st, [](const S& a, const S& b) { return detail::max_sum_merge(a, b); }, bx, smem);
  if (!valid) return;
  st = finish_lane(st);
  const A inv_sum = A(1) / st.s, log_sum = detail::log_of(st.s);
  T* yr = y + row * K;  // (K)
  for (int64_t k = threadIdx.x; k < K; k += bx)
    yr[k] = from_acc<T>(softmax_value(to_acc(xr[k]), st.m, inv_sum, log_sum, log_out));
}

template <class T>
__global__ void __launch_bounds__(kLaneThreads)
    softmax_lanes_forward(const T* __restrict__ x, T* __restrict__ y, int64_t lanes, int64_t K, int64_t inner,
                          bool log_out) {
  using A = acc_t<T>;
  const int64_t lane = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (lane >= lanes) return;
  const int64_t o = lane / inner, i = lane - o * inner;
  const T* xb = x + o * K * inner + i;  // (K) at stride inner
  T* yb = y + o * K * inner + i;
  MaxSum<A> st = detail::max_sum_init<A>();
  int64_t k = 0;
  for (; k + kUnroll <= K; k += kUnroll) {
    A v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = to_acc(xb[(k + u) * inner]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) detail::max_sum_add(st, v[u]);
  }
  for (; k < K; ++k) detail::max_sum_add(st, to_acc(xb[k * inner]));
  st = finish_lane(st);
  const A inv_sum = A(1) / st.s, log_sum = detail::log_of(st.s);
  for (k = 0; k < K; ++k)
    yb[k * inner] = from_acc<T>(softmax_value(to_acc(xb[k * inner]), st.m, inv_sum, log_sum, log_out));
}

/// The term summed over K in the backward: g (log_softmax) or g * y (softmax).
template <class A>
__device__ __forceinline__ A backward_term(A g, A y, bool log_out) {
  return log_out ? g : g * y;
}

/// dx = g - exp(y) * s (log_softmax) or y * (g - s) (softmax).
template <class A>
__device__ __forceinline__ A backward_value(A g, A y, A s, bool log_out) {
  return log_out ? g - detail::exp_of(y) * s : y * (g - s);
}

template <class T>
__global__ void __launch_bounds__(1024)
    softmax_rows_backward(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx, int64_t rows, int64_t K,
                          bool log_out, int bx, int by) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  A* smem = reinterpret_cast<A*>(smem_bytes);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < rows;
  const int64_t base = (valid ? row : 0) * K;  // row start in g, y, dx: (K)
  A s = A(0);
  if (valid) {
    int64_t k = threadIdx.x;
    for (; k + (kUnroll - 1) * bx < K; k += kUnroll * bx) {
      A gv[kUnroll], yv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        gv[u] = to_acc(g[base + k + u * bx]);
        yv[u] = to_acc(y[base + k + u * bx]);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) s += backward_term(gv[u], yv[u], log_out);
    }
    for (; k < K; k += bx) s += backward_term(to_acc(g[base + k]), to_acc(y[base + k]), log_out);
  }
  s = detail::row_group_allreduce(
      s, [](A a, A b) { return a + b; }, bx, smem);
  if (!valid) return;
  for (int64_t k = threadIdx.x; k < K; k += bx)
    dx[base + k] = from_acc<T>(backward_value(to_acc(g[base + k]), to_acc(y[base + k]), s, log_out));
}

template <class T>
__global__ void __launch_bounds__(kLaneThreads)
    softmax_lanes_backward(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx, int64_t lanes,
                           int64_t K, int64_t inner, bool log_out) {
  using A = acc_t<T>;
  const int64_t lane = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (lane >= lanes) return;
  const int64_t o = lane / inner, i = lane - o * inner;
  const int64_t base = o * K * inner + i;  // (K) at stride inner in g, y, dx
  A s = A(0);
  int64_t k = 0;
  for (; k + kUnroll <= K; k += kUnroll) {
    A gv[kUnroll], yv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      gv[u] = to_acc(g[base + (k + u) * inner]);
      yv[u] = to_acc(y[base + (k + u) * inner]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) s += backward_term(gv[u], yv[u], log_out);
  }
  for (; k < K; ++k) s += backward_term(to_acc(g[base + k * inner]), to_acc(y[base + k * inner]), log_out);
  for (k = 0; k < K; ++k) {
    const int64_t j = base + k * inner;
    dx[j] = from_acc<T>(backward_value(to_acc(g[j]), to_acc(y[j]), s, log_out));
  }
}

int64_t checked_blocks(int64_t blocks, const char* what, int64_t outer, int64_t K, int64_t inner) {
  ZAE_CHECK(blocks <= INT_MAX, what, " (cuda): shape (", outer, ", ", K, ", ", inner, ") needs ", blocks,
            " blocks, more than a grid holds");
  return blocks;
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, bool log, cudaStream_t stream) {
  if (outer == 0 || K == 0 || inner == 0) return;
  using A = acc_t<T>;
  if (inner == 1) {
    const detail::RowShape rs = detail::row_shape(outer, K);
    const auto blocks = static_cast<unsigned>(checked_blocks(rs.blocks, "softmax", outer, K, inner));
    softmax_rows_forward<T>
        <<<blocks, dim3(rs.bx, rs.by), rs.smem(sizeof(MaxSum<A>)), stream>>>(x, y, outer, K, log, rs.bx, rs.by);
  } else {
    const int64_t lanes = outer * inner;
    const auto blocks =
        static_cast<unsigned>(checked_blocks(detail::ceil_div(lanes, kLaneThreads), "softmax", outer, K, inner));
    softmax_lanes_forward<T><<<blocks, kLaneThreads, 0, stream>>>(x, y, lanes, K, inner, log);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t outer, int64_t K, int64_t inner, bool log,
                      cudaStream_t stream) {
  if (outer == 0 || K == 0 || inner == 0) return;
  using A = acc_t<T>;
  if (inner == 1) {
    const detail::RowShape rs = detail::row_shape(outer, K);
    const auto blocks = static_cast<unsigned>(checked_blocks(rs.blocks, "softmax backward", outer, K, inner));
    softmax_rows_backward<T>
        <<<blocks, dim3(rs.bx, rs.by), rs.smem(sizeof(A)), stream>>>(g, y, dx, outer, K, log, rs.bx, rs.by);
  } else {
    const int64_t lanes = outer * inner;
    const auto blocks = static_cast<unsigned>(
        checked_blocks(detail::ceil_div(lanes, kLaneThreads), "softmax backward", outer, K, inner));
    softmax_lanes_backward<T><<<blocks, kLaneThreads, 0, stream>>>(g, y, dx, lanes, K, inner, log);
  }
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_SOFTMAX(T)                                                                      \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool, cudaStream_t); \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, cudaStream_t);
ZAE_CUDA_SOFTMAX(float)
ZAE_CUDA_SOFTMAX(double)
ZAE_CUDA_SOFTMAX(Half)
ZAE_CUDA_SOFTMAX(BFloat16)
#undef ZAE_CUDA_SOFTMAX

}  // namespace zae::kernels::cuda
