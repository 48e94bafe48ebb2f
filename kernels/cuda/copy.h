// CUDA strided copy with dtype conversion: dst[i] = Dst(src[i]) over a StridedIter<2>
// (operand 0 = dst, 1 = src), the twin of kernels/cpu/copy.h (same conversion rules,
// kernels/simt/convert.h). The caller makes the operands' device current.
#pragma once

#include <cuda_runtime.h>

#include "kernels/strided.h"

namespace zae::kernels::cuda {

/// Dst, Src: float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool.
template <class Dst, class Src>
void copy_cast(const StridedIter<2>& it, Dst* dst, const Src* src, cudaStream_t stream);

}  // namespace zae::kernels::cuda
