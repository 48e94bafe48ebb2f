// CPU elementwise unary kernels: out[i] = f(a[i]) over a StridedIter<2>
// (operand 0 = out, 1 = a). Arithmetic happens in acc_t<T> (float for the 16-bit
// floats). The op is chosen once per call, outside the element loop; a run that is
// dense for both operands takes a plain loop the compiler can vectorize.
// Invariants: out may alias a exactly (same element for the same index, read before
// written); integer T supports only neg, abs, relu and sign (others throw
// std::invalid_argument; the engine rejects them first with a clear message).
#pragma once

#include "kernels/strided.h"

namespace zae::kernels::cpu {

/// Kernel-level unary op; same enumerators, same order as zae::UnaryOp (engine/ops/elementwise_into.h).
enum class UnaryKind {
  neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, gelu, gelu_tanh, silu, sign,
  gelu_grad,              // d gelu(x) / dx, exact erf form
  gelu_tanh_grad,         // d gelu_tanh(x) / dx
  silu_grad,              // d silu(x) / dx
  sigmoid_grad_from_out,  // y * (1 - y) where y = sigmoid(x)
  tanh_grad_from_out,     // 1 - y^2 where y = tanh(x)
};

/// Whether `op` is defined for integer element types.
constexpr bool unary_supports_integers(UnaryKind op) {
  return op == UnaryKind::neg || op == UnaryKind::abs || op == UnaryKind::relu || op == UnaryKind::sign;
}

/// out = op(a) elementwise. T: float, double, Half, BFloat16, int32_t, int64_t, uint8_t.
template <class T>
void unary(UnaryKind op, const StridedIter<2>& it, T* out, const T* a);

}  // namespace zae::kernels::cpu
