// Dropout kernels (CPU). Element i (row-major position in the tensor) is kept iff
// philox::uniform_float(seed, offset, i) >= p, compared in float; a CUDA twin that
// follows the same rule draws the same mask. Kept elements are scaled by `scale`.
// Invariant: the mask written by forward is exactly what backward multiplies by.
#pragma once

#include <cstdint>

#include "kernels/strided.h"

namespace zae::kernels::cpu {

/// out = keep ? x * scale : 0 and mask = keep. Operands of it (sizes = x's shape,
/// in row-major order so that linear position = i): 0 = out, 1 = x, 2 = mask.
template <class T>
void dropout_forward(const StridedIter<3>& it, T* out, const T* x, bool* mask, float p, double scale, uint64_t seed,
                     uint64_t offset);

/// d_x = mask ? g * scale : 0. Operands of it: 0 = d_x, 1 = g, 2 = mask.
template <class T>
void dropout_backward(const StridedIter<3>& it, T* d_x, const T* g, const bool* mask, double scale);

}  // namespace zae::kernels::cpu
