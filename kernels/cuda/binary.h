// CUDA binary, comparison and where launchers (kernels in kernels/cuda/elementwise.cuh,
// functors in kernels/simt/binary_ops.h). Same contracts as the CPU twins in
// kernels/cpu/binary.h, plus the stream the work is queued on (the caller makes the
// operands' device current).
// Invariants: out may alias a or b exactly; a stride of 0 broadcasts an operand; integer
// T has no div (std::invalid_argument); maximum/minimum propagate NaN.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cpu/binary.h"
#include "kernels/numeric.h"
#include "kernels/strided.h"

namespace zae::kernels::cuda {

using BinaryKind = cpu::BinaryKind;
using CompareKind = cpu::CompareKind;

/// out = a (op) b, add: a + alpha * b, sub: a - alpha * b. T: every dtype but bool.
template <class T>
void binary(BinaryKind op, const StridedIter<3>& it, T* out, const T* a, const T* b, acc_t<T> alpha,
            cudaStream_t stream);

/// out = a (op) b as bool. T: every element type including bool.
template <class T>
void compare(CompareKind op, const StridedIter<3>& it, bool* out, const T* a, const T* b, cudaStream_t stream);

/// out = cond ? a : b over a StridedIter<4> (out, cond, a, b). T: every element type.
template <class T>
void where(const StridedIter<4>& it, T* out, const bool* cond, const T* a, const T* b, cudaStream_t stream);

}  // namespace zae::kernels::cuda
