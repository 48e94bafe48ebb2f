// OffsetCalc: the device-side index calculator of the strided elementwise kernels.
// Maps a linear (row-major) index of a 32-bit chunk (kernels/simt/launch_plan.h) to the
// element offset of each of N operands. Passed to kernels by value (sizes and strides
// live in the kernel's parameter space), host-constructible and host-callable so that
// the host tests run the same code.
// Invariants: ndim <= kMaxDims; numel and every |offset| of the chunk are < 2^31, so the
// unsigned 32-bit arithmetic below wraps to the true (possibly negative) offset, which
// at() recovers as int32. Dim 0 of the stored arrays is the innermost.
#pragma once

#include <cstdint>

#include "kernels/macros.h"
#include "kernels/strided.h"

namespace zae::kernels::simt {

template <int N>
struct OffsetCalc {
  int ndim = 0;
  uint32_t sizes[kMaxDims] = {};       // innermost first
  uint32_t strides[N][kMaxDims] = {};  // two's complement of negative strides

  /// From an iterator that fits 32-bit indexing (dim ndim-1 innermost there).
  static OffsetCalc from(const StridedIter<N>& it) {
    OffsetCalc c;
    c.ndim = it.ndim;
    for (int d = 0; d < it.ndim; ++d) {
      const int src = it.ndim - 1 - d;
      c.sizes[d] = static_cast<uint32_t>(it.sizes[src]);
      for (int k = 0; k < N; ++k) c.strides[k][d] = static_cast<uint32_t>(it.strides[k][src]);
    }
    return c;
  }

  /// Offsets of every operand for linear index `i` (offsets[k] as signed element counts).
  ZAE_INLINE void get(uint32_t i, int32_t (&offsets)[N]) const {
    uint32_t acc[N];
    ZAE_UNROLL
    for (int k = 0; k < N; ++k) acc[k] = 0;
    ZAE_UNROLL
    for (int d = 0; d < kMaxDims; ++d) {
      if (d >= ndim) break;
      uint32_t idx = i;
      if (d + 1 < ndim) {  // the outermost dim needs no division
        const uint32_t q = i / sizes[d];
        idx = i - q * sizes[d];
        i = q;
      }
      ZAE_UNROLL
      for (int k = 0; k < N; ++k) acc[k] += idx * strides[k][d];
    }
    ZAE_UNROLL
    for (int k = 0; k < N; ++k) offsets[k] = static_cast<int32_t>(acc[k]);
  }
};

}  // namespace zae::kernels::simt
