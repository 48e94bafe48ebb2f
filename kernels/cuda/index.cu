// CUDA index kernels that select or validate (contract in index.h): index_stats,
// gather, index_select, one_hot. The selecting kernels copy raw elements, so they are
// instantiated per element size (1, 2, 4, 8 bytes) and index type only. Accumulating
// kernels live in index_accumulate.cu.
#include "kernels/cuda/index.h"

#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "engine/error.h"
#include "kernels/cuda/index_common.cuh"

namespace zae::kernels::cuda {

namespace {

using namespace index_detail;

template <class I>
__global__ void __launch_bounds__(kThreads)
    index_stats_kernel(const I* index, int64_t n, int64_t size, unsigned long long* stats) {
  unsigned long long first = ULLONG_MAX;
  long long largest = LLONG_MIN;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const long long v = static_cast<long long>(index[i]);
    if ((v < 0 || v >= size) && static_cast<unsigned long long>(i) < first) first = static_cast<unsigned long long>(i);
    if (v > largest) largest = v;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const unsigned long long f = __shfl_down_sync(0xffffffffu, first, off);
    const long long l = __shfl_down_sync(0xffffffffu, largest, off);
    if (f < first) first = f;
    if (l > largest) largest = l;
  }
  if ((threadIdx.x & 31) == 0) {
    if (first != ULLONG_MAX) atomicMin(&stats[0], first);
    atomicMax(&stats[1], static_cast<unsigned long long>(largest) ^ (1ull << 63));
  }
}

template <class E, class I>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const Geometry3 g, E* out, const E* x, const I* index, int64_t total, int64_t x_dim_stride) {
  for (int64_t p = grid_start(); p < total; p += grid_stride()) {
    int64_t off[3];
    offsets3(g, p, off);
    out[off[0]] = x[off[1] + static_cast<int64_t>(index[off[2]]) * x_dim_stride];
  }
}

template <class E, class I>
__global__ void __launch_bounds__(kThreads)
    index_select_kernel(E* out, const E* x, const I* index, int64_t outer, int64_t x_rows, int64_t n_index,
                        int64_t inner) {
  const int64_t total = outer * n_index * inner;  // (outer, n_index, inner) outputs
  for (int64_t e = grid_start(); e < total; e += grid_stride()) {
    const int64_t j = e % inner, r = e / inner;
    const int64_t l = r % n_index, o = r / n_index;
    out[e] = x[(o * x_rows + static_cast<int64_t>(index[l])) * inner + j];
  }
}

template <class I>
__global__ void __launch_bounds__(kThreads) one_hot_kernel(int64_t* out, const I* index, int64_t n, int64_t classes) {
  const int64_t total = n * classes;  // (n, classes)
  for (int64_t e = grid_start(); e < total; e += grid_stride())
    out[e] = static_cast<int64_t>(index[e / classes]) == e % classes ? 1 : 0;
}

/// Calls fn(E{}) with E the unsigned integer type of elem_size bytes.
template <class Fn>
void with_element(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1: return fn(uint8_t{});
    case 2: return fn(uint16_t{});
    case 4: return fn(uint32_t{});
    case 8: return fn(uint64_t{});
    default: break;
  }
  ZAE_FAIL("CUDA index kernels: unsupported element size ", elem_size, " bytes (expected 1, 2, 4 or 8)");
}

}  // namespace

template <class I>
void index_stats(const I* index, int64_t n, int64_t size, unsigned long long* stats, cudaStream_t stream) {
  CUDA_CHECK(cudaMemsetAsync(stats, 0xff, sizeof(unsigned long long), stream));    // no invalid position yet
  CUDA_CHECK(cudaMemsetAsync(stats + 1, 0, sizeof(unsigned long long), stream));   // max = INT64_MIN
  index_stats_kernel<I><<<grid_for(n), kThreads, 0, stream>>>(index, n, size, stats);
  CUDA_CHECK(cudaGetLastError());
}

template <class I>
void gather(const StridedIter<3>& it, void* out, const void* x, const I* index, int64_t x_dim_stride,
            size_t elem_size, cudaStream_t stream) {
  const int64_t total = it.numel();
  if (total == 0) return;
  const Geometry3 g = geometry_of(it);
  with_element(elem_size, [&](auto e) {
    using E = decltype(e);
    gather_kernel<E, I><<<grid_for(total), kThreads, 0, stream>>>(g, static_cast<E*>(out), static_cast<const E*>(x),
                                                                   index, total, x_dim_stride);
  });
  CUDA_CHECK(cudaGetLastError());
}

template <class I>
void index_select(void* out, const void* x, const I* index, int64_t outer, int64_t x_rows, int64_t n_index,
                  int64_t inner, size_t elem_size, cudaStream_t stream) {
  const int64_t total = outer * n_index * inner;
  if (total == 0) return;
  with_element(elem_size, [&](auto e) {
    using E = decltype(e);
    index_select_kernel<E, I><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<E*>(out), static_cast<const E*>(x), index, outer, x_rows, n_index, inner);
  });
  CUDA_CHECK(cudaGetLastError());
}

template <class I>
void one_hot(int64_t* out, const I* index, int64_t n, int64_t classes, cudaStream_t stream) {
  if (n * classes == 0) return;
  one_hot_kernel<I><<<grid_for(n * classes), kThreads, 0, stream>>>(out, index, n, classes);
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_INSTANTIATE_CUDA_INDEX(I)                                                                            \
  template void index_stats<I>(const I*, int64_t, int64_t, unsigned long long*, cudaStream_t);                  \
  template void gather<I>(const StridedIter<3>&, void*, const void*, const I*, int64_t, size_t, cudaStream_t);  \
  template void index_select<I>(void*, const void*, const I*, int64_t, int64_t, int64_t, int64_t, size_t,       \
                                cudaStream_t);                                                                  \
  template void one_hot<I>(int64_t*, const I*, int64_t, int64_t, cudaStream_t);

ZAE_INSTANTIATE_CUDA_INDEX(int32_t)
ZAE_INSTANTIATE_CUDA_INDEX(int64_t)

#undef ZAE_INSTANTIATE_CUDA_INDEX

}  // namespace zae::kernels::cuda
