// Non-recording elementwise primitives shared by the autograd ops, the in-place
// ops and backward formulas: out = f(a) / out = f(a, b) over strided, broadcast
// operands. `out` may alias `a` or `b` exactly (same view), as in-place ops need.
#pragma once

#include "engine/tensor.h"

namespace zae {

enum class UnaryOp {
  neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, gelu, gelu_tanh, silu, sign,
  // backward helpers: out = f'(a) pieces used by formulas
  gelu_grad, gelu_tanh_grad, silu_grad, sigmoid_grad_from_out, tanh_grad_from_out,
};

enum class BinaryOp { add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge };

/// out = op(a) elementwise; out's shape is the result shape (a broadcast to it).
void unary_into(UnaryOp op, const Tensor& out, const Tensor& a, const char* op_name);
/// out = a (op) b elementwise, with out = a + alpha * b for add/sub(alpha).
/// Comparisons write bool outputs. a and b are converted to the compute dtype first if needed.
void binary_into(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b, double alpha, const char* op_name);

}  // namespace zae
