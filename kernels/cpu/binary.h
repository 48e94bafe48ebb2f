// CPU elementwise binary kernels over a StridedIter<3> (operand 0 = out, 1 = a,
// 2 = b), comparisons writing bool, and the ternary select `where` over a
// StridedIter<4> (out, cond, a, b). Arithmetic happens in acc_t<T>.
// Invariants: out may alias a or b exactly (same element for the same index);
// a stride of 0 means that operand is broadcast along that dim. Integer T has no
// `div` (the engine divides integers in floating point; the kernel throws
// std::invalid_argument). maximum/minimum propagate NaN (as torch).
#pragma once

#include "kernels/numeric.h"
#include "kernels/strided.h"

namespace zae::kernels::cpu {

/// Kernel-level arithmetic op; same enumerators, same order as the first part of zae::BinaryOp.
enum class BinaryKind { add, sub, mul, div, maximum, minimum, pow };
/// Kernel-level comparison; same order as zae::BinaryOp's eq..ge.
enum class CompareKind { eq, ne, lt, le, gt, ge };

/// out = a (op) b, with add: a + alpha * b and sub: a - alpha * b (alpha ignored otherwise).
/// T: float, double, Half, BFloat16, int32_t, int64_t, uint8_t.
template <class T>
void binary(BinaryKind op, const StridedIter<3>& it, T* out, const T* a, const T* b, acc_t<T> alpha);

/// out = a (op) b as bool. T: every element type including bool.
template <class T>
void compare(CompareKind op, const StridedIter<3>& it, bool* out, const T* a, const T* b);

/// out = cond ? a : b. T: every element type including bool.
template <class T>
void where(const StridedIter<4>& it, T* out, const bool* cond, const T* a, const T* b);

}  // namespace zae::kernels::cpu
