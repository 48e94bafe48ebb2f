// CUDA layer_norm forward and backward (contract in layer_norm.h).
// Row kernels give each row to one row group (detail::row_shape) and merge the row sums
// with row_group_allreduce, so every lane knows the statistics before it writes. The
// dweight / dbias column sums: block (32, 8) covers 32 columns of one chunk of rows;
// the 8 row lanes are merged with a fixed shared-memory tree, chunks in chunk order.
#include "kernels/cuda/layer_norm.h"

#include <algorithm>
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/reduce_block.cuh"

namespace zae::kernels::cuda {

namespace {

using detail::from_acc;
using detail::Pair;
using detail::PairPlus;
using detail::Plus;
using detail::to_acc;

constexpr int kUnroll = 4;
constexpr int kColTile = 32;  // columns per block in the dweight / dbias kernel
constexpr int kColRows = 8;   // row lanes per block in the dweight / dbias kernel
constexpr int kColThreads = kColTile * kColRows;
constexpr int kFinalThreads = 256;

template <class T>
__global__ void __launch_bounds__(1024)
    layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias,
                              T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd, int64_t M,
                              int64_t N, acc_t<T> eps, int bx, int by) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  A* smem = reinterpret_cast<A*>(smem_bytes);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < M;
  const T* xr = x + (valid ? row : 0) * N;  // (N)
  const A inv_n = A(1) / static_cast<A>(N);
  A s = A(0);
  if (valid) {
    int64_t j = threadIdx.x;
    for (; j + (kUnroll - 1) * bx < N; j += kUnroll * bx) {
      A v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = to_acc(xr[j + u * bx]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) s += v[u];
    }
    for (; j < N; j += bx) s += to_acc(xr[j]);
  }
  s = detail::row_group_allreduce(s, Plus<A>{}, bx, smem);
  const A mu = s * inv_n;
  A ss = A(0);
  if (valid) {
    for (int64_t j = threadIdx.x; j < N; j += bx) {  // the row is in cache now
      const A d = to_acc(xr[j]) - mu;
      ss += d * d;
    }
  }
  ss = detail::row_group_allreduce(ss, Plus<A>{}, bx, smem);
  if (!valid) return;
  const A r = A(1) / detail::sqrt_of(ss * inv_n + eps);
  if (threadIdx.x == 0) {
    mean[row] = mu;
    rstd[row] = r;
  }
  T* yr = y + row * N;  // (N)
  for (int64_t j = threadIdx.x; j < N; j += bx) {
    A v = (to_acc(xr[j]) - mu) * r;
    if (weight != nullptr) v *= to_acc(weight[j]);
    if (bias != nullptr) v += to_acc(bias[j]);
    yr[j] = from_acc<T>(v);
  }
}

template <class T>
__global__ void __launch_bounds__(1024)
    layer_norm_backward_dx_kernel(const T* __restrict__ g, const T* __restrict__ g_add, const T* __restrict__ x,
                                  const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                                  const T* __restrict__ weight, T* __restrict__ dx, int64_t M, int64_t N, int bx,
                                  int by) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  Pair<A>* smem = reinterpret_cast<Pair<A>*>(smem_bytes);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < M;
  const int64_t base = (valid ? row : 0) * N;  // row start in g, g_add, x, dx: (N)
  const A mu = valid ? mean[row] : A(0), r = valid ? rstd[row] : A(0);
  auto gw_at = [&](int64_t j) {
    const A gj = to_acc(g[base + j]);
    return weight != nullptr ? gj * to_acc(weight[j]) : gj;
  };
  Pair<A> sums{A(0), A(0)};  // (sum gw, sum gw * xhat)
  if (valid) {
    for (int64_t j = threadIdx.x; j < N; j += bx) {
      const A xhat = (to_acc(x[base + j]) - mu) * r;
      const A gw = gw_at(j);
      sums.a += gw;
      sums.b += gw * xhat;
    }
  }
  sums = detail::row_group_allreduce(sums, PairPlus<A>{}, bx, smem);
  if (!valid) return;
  const A inv_n = A(1) / static_cast<A>(N);
  const A a = sums.a * inv_n, bb = sums.b * inv_n;
  for (int64_t j = threadIdx.x; j < N; j += bx) {
    const A xhat = (to_acc(x[base + j]) - mu) * r;
    A v = r * (gw_at(j) - a - xhat * bb);
    if (g_add != nullptr) v = to_acc(g_add[base + j]) + v;
    dx[base + j] = from_acc<T>(v);
  }
}

/// Column sums of g * xhat and g over one chunk of rows, for kColTile columns. Writes the
/// chunk's partials (chunks, 2, N) or, with a single chunk, dweight / dbias directly.
template <class T>
__global__ void __launch_bounds__(kColThreads)
    layer_norm_backward_wb_kernel(const T* __restrict__ g, const T* __restrict__ x, const acc_t<T>* __restrict__ mean,
                                  const acc_t<T>* __restrict__ rstd, int64_t M, int64_t N, int64_t rows_per_chunk,
                                  acc_t<T>* __restrict__ partial, T* __restrict__ dweight, T* __restrict__ dbias) {
  using A = acc_t<T>;
  __shared__ Pair<A> smem[kColTile * kColRows];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk, r1 = min(M, r0 + rows_per_chunk);
  Pair<A> p{A(0), A(0)};  // (sum g * xhat, sum g)
  if (j < N) {
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) {
      const A gj = to_acc(g[r * N + j]);
      p.a += gj * (to_acc(x[r * N + j]) - mean[r]) * rstd[r];
      p.b += gj;
    }
  }
  p = detail::column_group_reduce(p, PairPlus<A>{}, kColTile, kColRows, smem);
  if (threadIdx.y != 0 || j >= N) return;
  if (partial != nullptr) {
    partial[chunk * 2 * N + j] = p.a;
    partial[chunk * 2 * N + N + j] = p.b;
  } else {
    if (dweight != nullptr) dweight[j] = from_acc<T>(p.a);
    if (dbias != nullptr) dbias[j] = from_acc<T>(p.b);
  }
}

/// dweight / dbias from the partials (chunks, 2, N), chunks added in order.
template <class T>
__global__ void __launch_bounds__(kFinalThreads)
    layer_norm_backward_wb_final_kernel(const acc_t<T>* __restrict__ partial, int64_t chunks, int64_t N,
                                        T* __restrict__ dweight, T* __restrict__ dbias) {
  using A = acc_t<T>;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= N) return;
  A sw = A(0), sb = A(0);
  for (int64_t c = 0; c < chunks; ++c) {
    sw += partial[c * 2 * N + j];
    sb += partial[c * 2 * N + N + j];
  }
  if (dweight != nullptr) dweight[j] = from_acc<T>(sw);
  if (dbias != nullptr) dbias[j] = from_acc<T>(sb);
}

/// How the dweight / dbias rows are cut: a pure function of (M, N) and the device.
struct ChunkPlan {
  int64_t tiles = 1;
  int64_t chunks = 1;
  int64_t rows_per_chunk = 1;
};

ChunkPlan chunk_plan(int64_t M, int64_t N) {
  ChunkPlan p;
  p.tiles = detail::ceil_div(N, kColTile);
  const int64_t target = 4 * static_cast<int64_t>(detail::sm_count());
  p.chunks = std::clamp<int64_t>(detail::ceil_div(target, p.tiles), 1, std::max<int64_t>(1, M / (4 * kColRows)));
  p.rows_per_chunk = std::max<int64_t>(1, detail::ceil_div(M, p.chunks));
  p.chunks = std::max<int64_t>(1, detail::ceil_div(M, p.rows_per_chunk));
  return p;
}

void check_grid(int64_t blocks, const char* what, int64_t M, int64_t N) {
  ZAE_CHECK(blocks <= INT_MAX, what, " (cuda): ", M, " rows of ", N, " need ", blocks,
            " blocks, more than a grid holds");
}

}  // namespace

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t M,
                        int64_t N, double eps, cudaStream_t stream) {
  using A = acc_t<T>;
  if (M == 0) return;
  const detail::RowShape rs = detail::row_shape(M, N);
  check_grid(rs.blocks, "layer_norm", M, N);
  layer_norm_forward_kernel<T><<<static_cast<unsigned>(rs.blocks), dim3(rs.bx, rs.by), rs.smem(sizeof(A)), stream>>>(
      x, weight, bias, y, mean, rstd, M, N, static_cast<A>(eps), rs.bx, rs.by);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
size_t layer_norm_backward_workspace_bytes(int64_t M, int64_t N, bool need_weight_or_bias) {
  if (!need_weight_or_bias || M == 0 || N == 0) return 0;
  const ChunkPlan p = chunk_plan(M, N);
  return p.chunks > 1 ? static_cast<size_t>(p.chunks) * 2 * static_cast<size_t>(N) * sizeof(acc_t<T>) : 0;
}

template <class T>
void layer_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t M, int64_t N, void* workspace, cudaStream_t stream) {
  using A = acc_t<T>;
  if (N == 0) return;
  if (M == 0) {  // empty sums: zero gradients (all-zero bits are 0 in every floating T)
    if (dweight != nullptr) CUDA_CHECK(cudaMemsetAsync(dweight, 0, static_cast<size_t>(N) * sizeof(T), stream));
    if (dbias != nullptr) CUDA_CHECK(cudaMemsetAsync(dbias, 0, static_cast<size_t>(N) * sizeof(T), stream));
    return;
  }
  if (dx != nullptr)
    detail::layer_norm_backward_dx<T>(g, nullptr, x, mean, rstd, weight, dx, M, N, "layer_norm backward", stream);
  if (dweight != nullptr || dbias != nullptr) {
    const ChunkPlan p = chunk_plan(M, N);
    check_grid(p.tiles, "layer_norm backward", M, N);
    A* partial = p.chunks > 1 ? static_cast<A*>(workspace) : nullptr;
    ZAE_CHECK(p.chunks == 1 || partial != nullptr, "layer_norm backward (cuda): ", M, " rows of ", N, " need ",
              layer_norm_backward_workspace_bytes<T>(M, N, true), " bytes of workspace, got none");
    const dim3 grid(static_cast<unsigned>(p.tiles), static_cast<unsigned>(p.chunks));
    layer_norm_backward_wb_kernel<T><<<grid, dim3(kColTile, kColRows), 0, stream>>>(
        g, x, mean, rstd, M, N, p.rows_per_chunk, partial, dweight, dbias);
    if (partial != nullptr) {
      const auto blocks = static_cast<unsigned>(detail::ceil_div(N, kFinalThreads));
      layer_norm_backward_wb_final_kernel<T>
          <<<blocks, kFinalThreads, 0, stream>>>(partial, p.chunks, N, dweight, dbias);
    }
  }
  CUDA_CHECK(cudaGetLastError());
}

namespace detail {

template <class T>
void layer_norm_backward_dx(const T* g, const T* g_add, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd,
                            const T* weight, T* dx, int64_t M, int64_t N, const char* what, cudaStream_t stream) {
  using A = acc_t<T>;
  const RowShape rs = row_shape(M, N);
  check_grid(rs.blocks, what, M, N);
  layer_norm_backward_dx_kernel<T>
      <<<static_cast<unsigned>(rs.blocks), dim3(rs.bx, rs.by), rs.smem(sizeof(Pair<A>)), stream>>>(
          g, g_add, x, mean, rstd, weight, dx, M, N, rs.bx, rs.by);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail

#define ZAE_CUDA_LAYER_NORM(T)                                                                                     \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, acc_t<T>*, int64_t, int64_t,    \
                                      double, cudaStream_t);                                                       \
  template size_t layer_norm_backward_workspace_bytes<T>(int64_t, int64_t, bool);                                  \
  template void layer_norm_backward<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*, T*, T*, \
                                       int64_t, int64_t, void*, cudaStream_t);                                     \
  template void detail::layer_norm_backward_dx<T>(const T*, const T*, const T*, const acc_t<T>*, const acc_t<T>*,  \
                                                  const T*, T*, int64_t, int64_t, const char*, cudaStream_t);
ZAE_CUDA_LAYER_NORM(float)
ZAE_CUDA_LAYER_NORM(double)
ZAE_CUDA_LAYER_NORM(Half)
ZAE_CUDA_LAYER_NORM(BFloat16)
#undef ZAE_CUDA_LAYER_NORM

}  // namespace zae::kernels::cuda
