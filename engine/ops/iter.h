// Builds the kernel-level StridedIter for an elementwise op: operand 0 is the
// output, the others are broadcast to its shape (stride 0 on broadcast dims),
// size-1 dims are dropped and adjacent dims that walk memory as one are merged,
// so a dense op reaches its kernel as a single flat run.
#pragma once

#include <array>

#include "engine/tensor.h"
#include "kernels/strided.h"

namespace zae {

/// Strides of `t` viewed as broadcast to `shape` (right-aligned; 0 where t has size 1).
Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op);

template <int N>
kernels::StridedIter<N> make_iter(const std::array<const Tensor*, N>& ops, const char* op_name) {
  const Shape& shape = ops[0]->shape();
  std::array<Shape, N> st;
  for (int k = 0; k < N; ++k) st[k] = k == 0 ? ops[0]->strides() : broadcast_strides(*ops[k], shape, op_name);
  kernels::StridedIter<N> it;
  // Keep non-1 dims, merging dim d into the previous kept dim when contiguous for all operands.
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = it.ndim > 0;
    for (int k = 0; k < N && merge; ++k)
      merge = it.strides[k][it.ndim - 1] == st[k][d] * shape[d];
    if (merge) {
      it.sizes[it.ndim - 1] *= shape[d];
      for (int k = 0; k < N; ++k) it.strides[k][it.ndim - 1] = st[k][d];
    } else {
      it.sizes[it.ndim] = shape[d];
      for (int k = 0; k < N; ++k) it.strides[k][it.ndim] = st[k][d];
      ++it.ndim;
    }
  }
  if (shape_numel(shape) == 0) {  // an empty op: one dim of size 0
    it.ndim = 1;
    it.sizes[0] = 0;
  }
  return it;
}

}  // namespace zae
