// CUDA unary elementwise launchers (kernels in kernels/cuda/elementwise.cuh, functors in
// kernels/simt/unary_ops.h). Same contract as the CPU twin kernels/cpu/unary.h, plus the
// stream the work is queued on (the caller makes the operands' device current).
// Invariants: out may alias a exactly; integer T supports only neg, abs, relu and sign
// (others throw std::invalid_argument); returns once the launch is queued.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cpu/unary.h"
#include "kernels/strided.h"

namespace zae::kernels::cuda {

using UnaryKind = cpu::UnaryKind;

/// out = op(a) elementwise. T: float, double, Half, BFloat16, int32_t, int64_t, uint8_t.
template <class T>
void unary(UnaryKind op, const StridedIter<2>& it, T* out, const T* a, cudaStream_t stream);

}  // namespace zae::kernels::cuda
