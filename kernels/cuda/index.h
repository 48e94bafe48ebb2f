// CUDA index kernels: the twins of kernels/cpu/index.h (gather, index_select,
// scatter_add, index_add, one_hot) plus the device-side index validation that the
// ops read back once per call.
//
// Invariants:
// - Pointers are device pointers on the current device; geometry and sizes are host
//   values. Work is enqueued on `stream`; no launcher synchronizes.
// - Every kernel but index_stats assumes validated indices in [0, size).
// - Selecting kernels (gather, index_select) move elements of `elem_size` bytes (1, 2,
//   4 or 8) without looking at their dtype.
// - Accumulating kernels (scatter_add, index_add) have two algorithms:
//   deterministic = true: a stable radix sort of the targets, then one thread (a block
//   for index_add rows) per output element adding its sources in index order, starting
//   from the output's value; the result is the CPU twin's, bit for bit (16-bit types:
//   scatter_add rounds after each add, index_add accumulates in float and rounds once,
//   as on the CPU). deterministic = false: atomicAdd (16-bit types accumulate in a
//   float copy of the output and are rounded once at the end), whose float sums vary in
//   the last bits from run to run.
// - `workspace` holds at least the bytes the matching *_workspace_bytes returns; the
//   output of the accumulating kernels must be contiguous (its offsets in `it` and the
//   float copy of the 16-bit atomic path share one layout).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/numeric.h"
#include "kernels/strided.h"

namespace zae::kernels::cuda {

/// Writes stats[0] = the first position p < n with index[p] outside [0, size) (all
/// ones when there is none) and stats[1] = the largest value, as (uint64)value ^ 2^63
/// (order-preserving). `stats` is 2 words of device memory; n > 0.
template <class I>
void index_stats(const I* index, int64_t n, int64_t size, unsigned long long* stats, cudaStream_t stream);

/// out[p] = x[x_base(p) + index[p] * x_dim_stride] (cpu::gather; operands 0 = out,
/// 1 = x with stride 0 on the gathered dim, 2 = index).
template <class I>
void gather(const StridedIter<3>& it, void* out, const void* x, const I* index, int64_t x_dim_stride,
            size_t elem_size, cudaStream_t stream);

/// out (outer, n_index, inner) = x (outer, x_rows, inner) at rows index (n_index); contiguous.
template <class I>
void index_select(void* out, const void* x, const I* index, int64_t outer, int64_t x_rows, int64_t n_index,
                  int64_t inner, size_t elem_size, cudaStream_t stream);

/// out (n, classes) = one-hot rows of index (n); out is fully written.
template <class I>
void one_hot(int64_t* out, const I* index, int64_t n, int64_t classes, cudaStream_t stream);

/// Workspace bytes of scatter_add over `positions` index positions into an output of
/// out_numel elements of T.
template <class T>
size_t scatter_add_workspace_bytes(int64_t positions, int64_t out_numel, bool deterministic);

/// out[out_base(p) + index[p] * out_dim_stride] += src[p] (cpu::scatter_add: operands
/// 0 = out with stride 0 on the scatter dim, 1 = src, 2 = index; the scatter dim is the
/// innermost dim of it). out_dim_size is out's size along the scatter dim; out is
/// contiguous with out_numel elements.
template <class T, class I>
void scatter_add(const StridedIter<3>& it, T* out, const T* src, const I* index, int64_t out_dim_stride,
                 int64_t out_dim_size, int64_t out_numel, bool deterministic, void* workspace, cudaStream_t stream);

/// Workspace bytes of index_add with n_index indices into an output of out_numel elements of T.
template <class T>
size_t index_add_workspace_bytes(int64_t n_index, int64_t out_numel, bool deterministic);

/// out (outer, out_rows, inner) += src (outer, n_index, inner) at rows index (n_index);
/// entries whose row equals skip_row add nothing (skip_row < 0: none). Contiguous.
template <class T, class I>
void index_add(T* out, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index, int64_t inner,
               int64_t skip_row, bool deterministic, void* workspace, cudaStream_t stream);

}  // namespace zae::kernels::cuda
