// Strided iteration over N operands that share one iteration shape.
// The engine broadcasts and coalesces shapes before calling a kernel; a kernel
// gets sizes and per-operand element strides (stride 0 = broadcast).
// Invariant: ndim <= kMaxDims, sizes >= 0, strides in elements, dim ndim-1 innermost.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace zae::kernels {

inline constexpr int kMaxDims = 8;

template <int N>
struct StridedIter {
  int ndim = 0;
  std::array<int64_t, kMaxDims> sizes{};
  std::array<std::array<int64_t, kMaxDims>, N> strides{};

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
  /// True when every operand walks memory densely in the iteration order.
  bool contiguous() const {
    for (int k = 0; k < N; ++k) {
      int64_t expect = 1;
      for (int d = ndim - 1; d >= 0; --d) {
        if (sizes[d] != 1 && strides[k][d] != expect) return false;
        expect *= sizes[d];
      }
    }
    return true;
  }
};

/// Calls fn(offsets, count, inner_strides) for runs of the innermost dim, covering
/// the linear index range [begin, end). offsets[k] is the element offset of operand k.
template <int N, class Fn>
void for_each_run(const StridedIter<N>& it, int64_t begin, int64_t end, Fn&& fn) {
  if (begin >= end) return;
  if (it.ndim == 0) {
    std::array<int64_t, N> off{};
    std::array<int64_t, N> st{};
    fn(off, int64_t{1}, st);
    return;
  }
  const int last = it.ndim - 1;
  const int64_t inner = it.sizes[last];
  std::array<int64_t, kMaxDims> idx{};
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % it.sizes[d];
    rem /= it.sizes[d];
  }
  std::array<int64_t, N> off{};
  for (int k = 0; k < N; ++k)
    for (int d = 0; d <= last; ++d) off[k] += idx[d] * it.strides[k][d];
  std::array<int64_t, N> inner_st{};
  for (int k = 0; k < N; ++k) inner_st[k] = it.strides[k][last];

  int64_t pos = begin;
  while (pos < end) {
    int64_t count = std::min(inner - idx[last], end - pos);
    fn(off, count, inner_st);
    pos += count;
    // Advance the multi-index by `count` along the innermost dim, carrying outwards.
    for (int k = 0; k < N; ++k) off[k] += count * inner_st[k];
    idx[last] += count;
    for (int d = last; d > 0 && idx[d] == it.sizes[d]; --d) {
      for (int k = 0; k < N; ++k) off[k] += it.strides[k][d - 1] - it.sizes[d] * it.strides[k][d];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

}  // namespace zae::kernels
