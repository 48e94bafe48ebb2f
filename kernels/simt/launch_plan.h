// Host-side planning for the CUDA elementwise kernels, in plain C++ so that it is
// unit-tested on machines without a GPU (tests/test_kernels_simt.cpp):
//  - vector_width / vector_path_ok: whether an op can take the contiguous path with
//    16-byte vector accesses (every operand dense, or a broadcast scalar input, and
//    every dense pointer aligned to its vector);
//  - for_each_32bit_chunk: splits an iteration space into pieces whose element count and
//    per-operand offsets fit 32-bit indices, so the strided kernels only need 32-bit
//    index math (a tensor of 2^31 or more elements is launched as several pieces);
//  - dispatch_elementwise: the decision between the two, shared with the host tests;
//  - grid_size: grid-stride launch geometry.
// Invariants: the chunks cover every element exactly once, in row-major order, and each
// reports the row-major linear index of its first element (dropout's Philox counter
// needs it); offsets of a chunk are relative to the operands' base pointers + base[k].
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>

#include "kernels/strided.h"

namespace zae::kernels::simt {

inline constexpr int kThreadsPerBlock = 256;
inline constexpr int64_t kMax32 = 0x7fffffff;  // largest element count / |offset| of a 32-bit chunk

/// Elements per 16-byte vector for operands of the given byte sizes (set by the widest).
template <size_t M>
constexpr int vector_width(const std::array<int, M>& elem_bytes) {
  int widest = 1;
  for (int b : elem_bytes) widest = std::max(widest, b);
  return std::max(1, 16 / widest);
}

/// How the contiguous path reads operand k: densely, or one broadcast value.
struct DensePlan {
  bool ok = false;
  int64_t n = 0;
  std::array<bool, 8> broadcast{};  // per operand; operand 0 (the output) is always dense
};

/// Whether every operand of `it` is dense in iteration order (after coalescing: one dim
/// of stride 1) or, for inputs (k >= 1), a single broadcast value (stride 0), with every
/// dense pointer aligned to `vec` elements. A 0-dim iterator is one dense element.
template <int N>
DensePlan vector_path_ok(const StridedIter<N>& it, const std::array<const void*, N>& ptrs,
                         const std::array<int, N>& elem_bytes, int vec) {
  static_assert(N <= 8);
  DensePlan plan;
  if (it.ndim > 1) return plan;
  plan.n = it.numel();
  for (int k = 0; k < N; ++k) {
    const int64_t st = it.ndim == 0 ? 1 : it.strides[k][0];
    if (st == 0 && k > 0) {
      plan.broadcast[k] = true;
      continue;
    }
    if (st != 1 && plan.n > 1) return plan;
    const auto addr = reinterpret_cast<uintptr_t>(ptrs[k]);
    if (addr % (static_cast<uintptr_t>(vec) * static_cast<uintptr_t>(elem_bytes[k])) != 0) return plan;
  }
  plan.ok = true;
  return plan;
}

/// Largest |offset| operand k reaches over `it` (sum of (size - 1) * |stride|).
template <int N>
int64_t max_offset(const StridedIter<N>& it, int k) {
  int64_t m = 0;
  for (int d = 0; d < it.ndim; ++d) m += (it.sizes[d] - 1) * std::llabs(it.strides[k][d]);
  return m;
}

/// Whether `it` can be walked with 32-bit linear indices and offsets (limit = kMax32;
/// tests pass a small limit to exercise the splitting).
template <int N>
bool fits_32bit(const StridedIter<N>& it, int64_t limit = kMax32) {
  if (it.numel() > limit) return false;
  for (int k = 0; k < N; ++k)
    if (max_offset(it, k) > limit) return false;
  return true;
}

/// Calls fn(chunk, base, linear_begin) for pieces of `it` that each fit 32-bit indexing:
/// chunk has `it`'s inner dims and a slice of its outer dims, base[k] is the element
/// offset of the chunk's first element for operand k, linear_begin its row-major index.
/// An empty iterator produces no chunk.
template <int N, class Fn>
void for_each_32bit_chunk(const StridedIter<N>& it, Fn&& fn, int64_t limit = kMax32,
                          std::array<int64_t, N> base = {}, int64_t linear_begin = 0) {
  if (it.numel() == 0) return;
  if (fits_32bit(it, limit)) {
    fn(it, base, linear_begin);
    return;
  }
  // Split the outermost dim (dim 0) into runs of `rows` indices.
  StridedIter<N> inner = it;  // dims 1.. only
  inner.ndim = it.ndim - 1;
  for (int d = 0; d < inner.ndim; ++d) {
    inner.sizes[d] = it.sizes[d + 1];
    for (int k = 0; k < N; ++k) inner.strides[k][d] = it.strides[k][d + 1];
  }
  const int64_t inner_numel = inner.numel();
  int64_t rows = 1;
  if (fits_32bit(inner, limit)) {
    rows = std::max<int64_t>(1, limit / std::max<int64_t>(inner_numel, 1));
    for (int k = 0; k < N; ++k) {
      const int64_t st = std::llabs(it.strides[k][0]);
      if (st > 0) rows = std::min(rows, 1 + (limit - max_offset(inner, k)) / st);
    }
    rows = std::max<int64_t>(rows, 1);
  }
  for (int64_t r0 = 0; r0 < it.sizes[0]; r0 += rows) {
    const int64_t count = std::min(rows, it.sizes[0] - r0);
    std::array<int64_t, N> b = base;
    for (int k = 0; k < N; ++k) b[k] += r0 * it.strides[k][0];
    const int64_t lin = linear_begin + r0 * inner_numel;
    if (count == 1) {
      for_each_32bit_chunk<N>(inner, fn, limit, b, lin);  // a single row: recurse into the inner dims
    } else {
      StridedIter<N> piece = it;
      piece.sizes[0] = count;
      fn(piece, b, lin);  // fits: count * inner_numel <= limit and offsets bounded by construction
    }
  }
}

/// The launch decision of every generic elementwise op: on_dense(plan) when the contiguous
/// path applies (vector_path_ok), else on_chunk(chunk, base, linear_begin) for each 32-bit
/// chunk. Nothing runs for an empty iterator. The CUDA launcher and the host tests share it.
template <int N, class Dense, class Chunk>
void dispatch_elementwise(const StridedIter<N>& it, const std::array<const void*, N>& ptrs,
                          const std::array<int, N>& elem_bytes, int vec, Dense&& on_dense, Chunk&& on_chunk,
                          int64_t limit = kMax32) {
  if (it.numel() == 0) return;
  const DensePlan plan = vector_path_ok<N>(it, ptrs, elem_bytes, vec);
  if (plan.ok)
    on_dense(plan);
  else
    for_each_32bit_chunk<N>(it, on_chunk, limit);
}

/// Work items of the contiguous path: vectors, or the tail elements when there is no full vector.
inline int64_t dense_work(int64_t n, int vec) { return n / vec > 0 ? n / vec : n; }

/// Blocks for a grid-stride loop over `work` items: enough to cover it once, capped at
/// `blocks_per_sm` resident blocks per multiprocessor (the loops take the rest).
inline int64_t grid_size(int64_t work, int sm_count, int threads = kThreadsPerBlock, int blocks_per_sm = 8) {
  const int64_t need = std::max<int64_t>(1, (work + threads - 1) / threads);
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(sm_count) * blocks_per_sm);
  return std::min(need, cap);
}

}  // namespace zae::kernels::simt
