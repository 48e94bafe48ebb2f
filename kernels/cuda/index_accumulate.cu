// CUDA accumulating index kernels (contract in index.h): scatter_add and index_add,
// each with a deterministic path (stable radix sort of the targets, index_sort.cuh,
// then an ordered sum per output element) and an atomicAdd path.
//
// Deterministic scatter_add: position p of the index shape (scatter dim innermost, so
// p runs through each line in index order) gets the key line(p) * out_dim_size +
// index[p], which names its output element uniquely; after the sort, the first
// position of each run of equal keys adds the run's sources to its element in
// position order. Deterministic index_add: the key is the row; one block per run adds
// the run's source rows column by column, in index order.
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/index.h"
#include "kernels/cuda/index_common.cuh"
#include "kernels/cuda/index_sort.cuh"

namespace zae::kernels::cuda {

namespace {

using namespace index_detail;

template <class T>
constexpr bool kHalfWidth = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// ---- 16-bit outputs accumulate atomically in a float copy ------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads) widen_kernel(const T* in, float* out, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = static_cast<float>(in[i]);
}

template <class T>
__global__ void __launch_bounds__(kThreads) narrow_kernel(const float* in, T* out, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = T(in[i]);
}

// ---- scatter_add ---------------------------------------------------------------------------

template <class A, class T, class I>
__global__ void __launch_bounds__(kThreads)
    scatter_atomic_kernel(const Geometry3 g, A* out, const T* src, const I* index, int64_t total,
                          int64_t out_dim_stride) {
  for (int64_t p = grid_start(); p < total; p += grid_stride()) {
    int64_t off[3];
    offsets3(g, p, off);
    atomic_add(out + off[0] + static_cast<int64_t>(index[off[2]]) * out_dim_stride, static_cast<A>(src[off[1]]));
  }
}

template <class I>
__global__ void __launch_bounds__(kThreads)
    scatter_keys_kernel(const Geometry3 g, const I* index, int64_t total, int64_t len, int64_t out_dim_size,
                        uint64_t* keys, int64_t* vals) {
  for (int64_t p = grid_start(); p < total; p += grid_stride()) {
    int64_t off[3];
    offsets3(g, p, off);
    keys[p] = static_cast<uint64_t>(p / len) * static_cast<uint64_t>(out_dim_size) +
              static_cast<uint64_t>(index[off[2]]);
    vals[p] = p;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    scatter_segments_kernel(const Geometry3 g, T* out, const T* src, const uint64_t* keys, const int64_t* vals,
                            int64_t total, int64_t out_dim_size, int64_t out_dim_stride) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const uint64_t key = keys[i];
    if (i > 0 && keys[i - 1] == key) continue;  // not the first of its run
    int64_t off[3];
    offsets3(g, vals[i], off);
    T* dst = out + off[0] + static_cast<int64_t>(key % static_cast<uint64_t>(out_dim_size)) * out_dim_stride;
    T acc = *dst;
    for (int64_t k = i; k < total && keys[k] == key; ++k) {
      offsets3(g, vals[k], off);
      acc = add_as(acc, src[off[1]]);
    }
    *dst = acc;
  }
}

// ---- index_add -------------------------------------------------------------------------------

template <class A, class T, class I>
__global__ void __launch_bounds__(kThreads)
    index_add_atomic_kernel(A* out, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index,
                            int64_t inner, int64_t skip_row) {
  const int64_t total = outer * n_index * inner;  // (outer, n_index, inner) sources
  for (int64_t e = grid_start(); e < total; e += grid_stride()) {
    const int64_t j = e % inner, r = e / inner;
    const int64_t l = r % n_index, o = r / n_index;
    const int64_t row = static_cast<int64_t>(index[l]);
    if (row == skip_row) continue;
    atomic_add(out + (o * out_rows + row) * inner + j, static_cast<A>(src[e]));
  }
}

template <class I>
__global__ void __launch_bounds__(kThreads) row_keys_kernel(const I* index, int64_t n, uint64_t* keys, int64_t* vals) {
  for (int64_t l = grid_start(); l < n; l += grid_stride()) {
    keys[l] = static_cast<uint64_t>(index[l]);
    vals[l] = l;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    index_add_segments_kernel(T* out, const T* src, const uint64_t* keys, const int64_t* vals, int64_t n_index,
                              int64_t outer, int64_t out_rows, int64_t inner, int64_t skip_row) {
  using A = acc_t<T>;
  const int64_t columns = outer * inner;
  for (int64_t i = blockIdx.x; i < n_index; i += gridDim.x) {
    const uint64_t row = keys[i];
    if ((i > 0 && keys[i - 1] == row) || static_cast<int64_t>(row) == skip_row) continue;
    for (int64_t c = threadIdx.x; c < columns; c += blockDim.x) {
      const int64_t o = c / inner, j = c % inner;
      T* dst = out + (o * out_rows + static_cast<int64_t>(row)) * inner + j;
      A acc = static_cast<A>(*dst);
      for (int64_t k = i; k < n_index && keys[k] == row; ++k)
        acc = acc + static_cast<A>(src[(o * n_index + vals[k]) * inner + j]);
      *dst = T(acc);
    }
  }
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------------

template <class T>
size_t scatter_add_workspace_bytes(int64_t positions, int64_t out_numel, bool deterministic) {
  if (deterministic) return sort_workspace_bytes(positions);
  if constexpr (kHalfWidth<T>) return static_cast<size_t>(out_numel) * sizeof(float);
  return 0;
}

template <class T, class I>
void scatter_add(const StridedIter<3>& it, T* out, const T* src, const I* index, int64_t out_dim_stride,
                 int64_t out_dim_size, int64_t out_numel, bool deterministic, void* workspace, cudaStream_t stream) {
  const int64_t total = it.numel();
  if (total == 0) return;
  const Geometry3 g = geometry_of(it);
  if (deterministic) {
    const int64_t len = it.ndim == 0 ? 1 : it.sizes[it.ndim - 1];  // positions per line
    auto* keys = static_cast<uint64_t*>(workspace);
    auto* vals = reinterpret_cast<int64_t*>(keys + 2 * total);
    scatter_keys_kernel<I><<<grid_for(total), kThreads, 0, stream>>>(g, index, total, len, out_dim_size, keys, vals);
    CUDA_CHECK(cudaGetLastError());
    const uint64_t max_key = static_cast<uint64_t>(total / len) * static_cast<uint64_t>(out_dim_size) - 1;
    const int64_t at = radix_sort_pairs(workspace, total, key_bits(max_key), stream);
    scatter_segments_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(g, out, src, keys + at, vals + at, total,
                                                                         out_dim_size, out_dim_stride);
  } else if constexpr (kHalfWidth<T>) {
    float* acc = static_cast<float*>(workspace);  // (out_numel) float copy of out
    widen_kernel<T><<<grid_for(out_numel), kThreads, 0, stream>>>(out, acc, out_numel);
    scatter_atomic_kernel<float, T, I><<<grid_for(total), kThreads, 0, stream>>>(g, acc, src, index, total,
                                                                                 out_dim_stride);
    narrow_kernel<T><<<grid_for(out_numel), kThreads, 0, stream>>>(acc, out, out_numel);
  } else {
    scatter_atomic_kernel<T, T, I><<<grid_for(total), kThreads, 0, stream>>>(g, out, src, index, total,
                                                                             out_dim_stride);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
size_t index_add_workspace_bytes(int64_t n_index, int64_t out_numel, bool deterministic) {
  if (deterministic) return sort_workspace_bytes(n_index);
  if constexpr (kHalfWidth<T>) return static_cast<size_t>(out_numel) * sizeof(float);
  return 0;
}

template <class T, class I>
void index_add(T* out, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index, int64_t inner,
               int64_t skip_row, bool deterministic, void* workspace, cudaStream_t stream) {
  const int64_t columns = outer * inner;
  if (columns == 0 || n_index == 0) return;
  if (deterministic) {
    auto* keys = static_cast<uint64_t*>(workspace);
    auto* vals = reinterpret_cast<int64_t*>(keys + 2 * n_index);
    row_keys_kernel<I><<<grid_for(n_index), kThreads, 0, stream>>>(index, n_index, keys, vals);
    CUDA_CHECK(cudaGetLastError());
    const int64_t at =
        radix_sort_pairs(workspace, n_index, key_bits(static_cast<uint64_t>(out_rows > 0 ? out_rows - 1 : 0)), stream);
    const int64_t warps = (columns + 31) / 32;
    const int threads = static_cast<int>(warps * 32 < kThreads ? warps * 32 : kThreads);
    const unsigned blocks = static_cast<unsigned>(n_index < kMaxGrid ? n_index : kMaxGrid);
    index_add_segments_kernel<T><<<blocks, threads, 0, stream>>>(out, src, keys + at, vals + at, n_index, outer,
                                                                 out_rows, inner, skip_row);
  } else if constexpr (kHalfWidth<T>) {
    const int64_t out_numel = outer * out_rows * inner;
    float* acc = static_cast<float*>(workspace);  // (out_numel) float copy of out
    widen_kernel<T><<<grid_for(out_numel), kThreads, 0, stream>>>(out, acc, out_numel);
    index_add_atomic_kernel<float, T, I><<<grid_for(outer * n_index * inner), kThreads, 0, stream>>>(
        acc, src, index, outer, out_rows, n_index, inner, skip_row);
    narrow_kernel<T><<<grid_for(out_numel), kThreads, 0, stream>>>(acc, out, out_numel);
  } else {
    index_add_atomic_kernel<T, T, I><<<grid_for(outer * n_index * inner), kThreads, 0, stream>>>(
        out, src, index, outer, out_rows, n_index, inner, skip_row);
  }
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_INSTANTIATE_SCATTER(T)                                                                        \
  template size_t scatter_add_workspace_bytes<T>(int64_t, int64_t, bool);                                \
  template void scatter_add<T, int32_t>(const StridedIter<3>&, T*, const T*, const int32_t*, int64_t, int64_t, \
                                        int64_t, bool, void*, cudaStream_t);                             \
  template void scatter_add<T, int64_t>(const StridedIter<3>&, T*, const T*, const int64_t*, int64_t, int64_t, \
                                        int64_t, bool, void*, cudaStream_t);
#define ZAE_INSTANTIATE_INDEX_ADD(T)                                                                             \
  template size_t index_add_workspace_bytes<T>(int64_t, int64_t, bool);                                         \
  template void index_add<T, int32_t>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                      bool, void*, cudaStream_t);                                               \
  template void index_add<T, int64_t>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                      bool, void*, cudaStream_t);

ZAE_INSTANTIATE_SCATTER(float)
ZAE_INSTANTIATE_SCATTER(double)
ZAE_INSTANTIATE_SCATTER(Half)
ZAE_INSTANTIATE_SCATTER(BFloat16)
ZAE_INSTANTIATE_SCATTER(int32_t)
ZAE_INSTANTIATE_SCATTER(int64_t)
ZAE_INSTANTIATE_SCATTER(uint8_t)
ZAE_INSTANTIATE_INDEX_ADD(float)
ZAE_INSTANTIATE_INDEX_ADD(double)
ZAE_INSTANTIATE_INDEX_ADD(Half)
ZAE_INSTANTIATE_INDEX_ADD(BFloat16)

#undef ZAE_INSTANTIATE_INDEX_ADD
#undef ZAE_INSTANTIATE_SCATTER

}  // namespace zae::kernels::cuda
