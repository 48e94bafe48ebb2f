// CUDA dropout kernels, the twins of kernels/cpu/dropout.h: element i (row-major position
// in the tensor) is kept iff philox::uniform_float(seed, offset, i) >= p, so the CPU and
// the device draw the same mask. The caller makes the operands' device current.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/strided.h"

namespace zae::kernels::cuda {

/// out = keep ? x * scale : 0 and mask = keep; operands of it: 0 = out, 1 = x, 2 = mask.
/// T: float, double, Half, BFloat16.
template <class T>
void dropout_forward(const StridedIter<3>& it, T* out, const T* x, bool* mask, float p, double scale, uint64_t seed,
                     uint64_t offset, cudaStream_t stream);

/// d_x = mask ? g * scale : 0; operands of it: 0 = d_x, 1 = g, 2 = mask.
template <class T>
void dropout_backward(const StridedIter<3>& it, T* d_x, const T* g, const bool* mask, double scale,
                      cudaStream_t stream);

}  // namespace zae::kernels::cuda
