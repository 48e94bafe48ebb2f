// Device-side helpers shared by the CUDA index kernels (index.cu, index_accumulate.cu):
// the strided geometry of gather / scatter as a plain kernel argument, per-position
// offsets, launch sizes, and atomic adds for every accumulating dtype.
// Invariants: Geometry3 mirrors kernels::StridedIter<3> (operand 0 = output, 1 = data,
// 2 = index; dim ndim-1 innermost); positions are row-major over `sizes`.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"
#include "kernels/strided.h"

namespace zae::kernels::cuda::index_detail {

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 4096;  // grid-stride loops cover larger problems

/// Blocks for n work items at kThreads per block (at least 1, at most kMaxGrid).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < kMaxGrid ? b : kMaxGrid);
}

struct Geometry3 {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[3][kMaxDims] = {};
};

inline Geometry3 geometry_of(const StridedIter<3>& it) {
  Geometry3 g;
  g.ndim = it.ndim;
  for (int d = 0; d < it.ndim; ++d) {
    g.sizes[d] = it.sizes[d];
    for (int k = 0; k < 3; ++k) g.strides[k][d] = it.strides[k][d];
  }
  return g;
}

/// Element offsets of the three operands at row-major position p.
__device__ __forceinline__ void offsets3(const Geometry3& g, int64_t p, int64_t (&off)[3]) {
  off[0] = off[1] = off[2] = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < g.ndim) {
      const int64_t c = p % g.sizes[d];
      p /= g.sizes[d];
      off[0] += c * g.strides[0][d];
      off[1] += c * g.strides[1][d];
      off[2] += c * g.strides[2][d];
    }
  }
}

__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- atomic adds ---------------------------------------------------------------------------

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // Two's complement: the unsigned sum wraps to the signed one.
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}
/// 8-bit add by compare-and-swap on the aligned 32-bit word holding the byte (the
/// caching allocator's blocks are multiples of 512 bytes, so the word is allocated).
__device__ __forceinline__ void atomic_add(uint8_t* p, uint8_t v) {
  unsigned int* word = reinterpret_cast<unsigned int*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{3});
  const unsigned shift = static_cast<unsigned>(reinterpret_cast<uintptr_t>(p) & 3u) * 8u;
  unsigned old = *word, assumed;
  do {
    assumed = old;
    const unsigned byte = ((assumed >> shift) + v) & 0xffu;
    old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (byte << shift));
  } while (old != assumed);
}

/// a + b in T's arithmetic type, stored back as T (the CPU twin's add_as).
template <class T>
__device__ __forceinline__ T add_as(T a, T b) {
  using A = acc_t<T>;
  return T(static_cast<A>(static_cast<A>(a) + static_cast<A>(b)));
}

}  // namespace zae::kernels::cuda::index_detail
