// Index kernels (CPU): gather / scatter_add along one dim over strided operands,
// row selection and row accumulation over (outer, rows, inner) blocks (the
// kernels behind index_select and embedding), one-hot, and the index validation
// every indexing op runs first.
// Invariants: every kernel but find_invalid_index / max_index assumes its
// indices were validated to lie in [0, size); indices are contiguous arrays;
// accumulating kernels (scatter_add, index_add) give the same bits for any
// thread count: each output element is summed by one thread, in index order.
#pragma once

#include <cstdint>

#include "kernels/strided.h"

namespace zae::kernels::cpu {

/// Position of the first value of index (n, contiguous) outside [0, size), skipping
/// values equal to *ignore when ignore is given; -1 when all are valid.
template <class I>
int64_t find_invalid_index(const I* index, int64_t n, int64_t size, const int64_t* ignore = nullptr);

/// Largest value of index (n > 0, contiguous).
template <class I>
int64_t max_index(const I* index, int64_t n);

/// out[p] = x[x_base(p) + index[p] * x_dim_stride] for every position p of the index shape.
/// Operands of it (sizes = the index shape): 0 = out, 1 = x with stride 0 on the
/// gathered dim, 2 = index.
template <class T, class I>
void gather(const StridedIter<3>& it, T* out, const T* x, const I* index, int64_t x_dim_stride);

/// out[out_base(p) + index[p] * out_dim_stride] += src[p] for every position p of the index shape.
/// Operands of it: 0 = out with stride 0 on the scatter dim, 1 = src, 2 = index;
/// the scatter dim must be it's innermost dim (ndim - 1), never merged with another.
/// Positions along that dim are added in index order; other positions in parallel.
template <class T, class I>
void scatter_add(const StridedIter<3>& it, T* out, const T* src, const I* index, int64_t out_dim_stride);

/// out (outer, n_index, inner) = x (outer, x_rows, inner) at rows index (n_index); all contiguous.
template <class T, class I>
void index_select(T* out, const T* x, const I* index, int64_t outer, int64_t x_rows, int64_t n_index, int64_t inner);

/// out (outer, out_rows, inner) += src (outer, n_index, inner) at rows index (n_index);
/// entries whose row equals skip_row get nothing (skip_row < 0: none). All contiguous.
/// Each output column is summed by one thread in index order (16-bit types in float).
template <class T, class I>
void index_add(T* out, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index, int64_t inner,
               int64_t skip_row);

/// out (n, classes) = one-hot rows of index (n); out is fully written.
template <class I>
void one_hot(int64_t* out, const I* index, int64_t n, int64_t classes);

}  // namespace zae::kernels::cpu
