// Strided copy with dtype conversion: dst[i] = Dst(src[i]) over a StridedIter<2>
// (operand 0 = dst, 1 = src). Float -> integer truncates toward zero; -> bool is != 0.
#pragma once

#include "kernels/strided.h"

namespace zae::kernels::cpu {

template <class Dst, class Src>
void copy_cast(const StridedIter<2>& it, Dst* dst, const Src* src);

}  // namespace zae::kernels::cpu
