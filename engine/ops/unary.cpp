// Elementwise unary ops with autograd: forward through unary_into / binary_into,
// backward formulas written with ordinary zae ops. Output dtype = input dtype
// (pow with a non-integer exponent on an integer tensor gives float32).
// Saved tensors: the input or the output, whichever the formula reads.
#include "engine/ops/unary.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"

namespace zae {

namespace {

using autograd::BackwardContext;

Tensor empty_out(const Tensor& x, const char* name, DType dt) {
  ZAE_CHECK(x.defined(), name, ": undefined tensor");
  return Tensor::empty(x.shape(), {.dtype = dt, .device = x.device()});
}

// out = op(x) without recording.
Tensor apply(UnaryOp op, const Tensor& x, const char* name) {
  Tensor out = empty_out(x, name, x.dtype());
  unary_into(op, out, x, name);
  return out;
}

// The dtype a scalar operand of `x` gets: x's dtype, or float32 for a non-integer
// value next to an integer tensor (int64 next to bool).
DType scalar_dtype(double v, DType x) {
  if (is_floating(x)) return x;
  bool integral = std::isfinite(v) && std::trunc(v) == v;
  if (!integral) return DType::float32;
  return x == DType::bool_ ? DType::int64 : x;
}

// Records a unary op whose gradient is g * factor(saved[0]).
template <class Factor>
void record_unary(const char* name, const Tensor& x, Tensor& out, const Tensor& saved, Factor factor) {
  autograd::record(name, {x}, out, {saved}, [factor](const Tensor& g, const BackwardContext& ctx) {
    return std::vector<Tensor>{mul(g, factor(ctx.saved[0]))};
  });
}

}  // namespace

Tensor neg(const Tensor& x) {
  Tensor out = apply(UnaryOp::neg, x, "neg");
  autograd::record("NegBackward", {x}, out, {}, [](const Tensor& g, const BackwardContext&) {
    return std::vector<Tensor>{neg(g)};
  });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = apply(UnaryOp::abs, x, "abs");
  record_unary("AbsBackward", x, out, x, [](const Tensor& s) { return apply(UnaryOp::sign, s, "abs_backward"); });
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = apply(UnaryOp::exp, x, "exp");
  record_unary("ExpBackward", x, out, out, [](const Tensor& y) { return y; });
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = apply(UnaryOp::log, x, "log");
  autograd::record("LogBackward", {x}, out, {x}, [](const Tensor& g, const BackwardContext& ctx) {
    return std::vector<Tensor>{div(g, ctx.saved[0])};
  });
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = apply(UnaryOp::sqrt, x, "sqrt");
  // d sqrt(x) = 1 / (2 sqrt(x))
  autograd::record("SqrtBackward", {x}, out, {out}, [](const Tensor& g, const BackwardContext& ctx) {
    return std::vector<Tensor>{div(mul(g, 0.5), ctx.saved[0])};
  });
  return out;
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = apply(UnaryOp::rsqrt, x, "rsqrt");
  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
  record_unary("RsqrtBackward", x, out, out, [](const Tensor& y) { return mul(mul(y, mul(y, y)), -0.5); });
  return out;
}

Tensor sin(const Tensor& x) {
  Tensor out = apply(UnaryOp::sin, x, "sin");
  record_unary("SinBackward", x, out, x, [](const Tensor& s) { return apply(UnaryOp::cos, s, "sin_backward"); });
  return out;
}

Tensor cos(const Tensor& x) {
  Tensor out = apply(UnaryOp::cos, x, "cos");
  record_unary("CosBackward", x, out, x, [](const Tensor& s) { return neg(apply(UnaryOp::sin, s, "cos_backward")); });
  return out;
}

Tensor tanh(const Tensor& x) {
  Tensor out = apply(UnaryOp::tanh, x, "tanh");
  record_unary("TanhBackward", x, out, out,
               [](const Tensor& y) { return apply(UnaryOp::tanh_grad_from_out, y, "tanh_backward"); });
  return out;
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = apply(UnaryOp::sigmoid, x, "sigmoid");
  record_unary("SigmoidBackward", x, out, out,
               [](const Tensor& y) { return apply(UnaryOp::sigmoid_grad_from_out, y, "sigmoid_backward"); });
  return out;
}

Tensor relu(const Tensor& x) {
  Tensor out = apply(UnaryOp::relu, x, "relu");
  // Gradient 1 where x > 0, else 0 (including x == 0).
  autograd::record("ReluBackward", {x}, out, {x}, [](const Tensor& g, const BackwardContext& ctx) {
    Tensor zero = scalar_tensor(0.0, {.dtype = g.dtype(), .device = g.device()});
    return std::vector<Tensor>{where(gt(ctx.saved[0], 0.0), g, zero)};
  });
  return out;
}

Tensor gelu(const Tensor& x, GeluApprox approximate) {
  if (approximate == GeluApprox::tanh) {
    Tensor out = apply(UnaryOp::gelu_tanh, x, "gelu");
    record_unary("GeluBackward", x, out, x,
                 [](const Tensor& s) { return apply(UnaryOp::gelu_tanh_grad, s, "gelu_backward"); });
    return out;
  }
  Tensor out = apply(UnaryOp::gelu, x, "gelu");
  record_unary("GeluBackward", x, out, x,
               [](const Tensor& s) { return apply(UnaryOp::gelu_grad, s, "gelu_backward"); });
  return out;
}

Tensor silu(const Tensor& x) {
  Tensor out = apply(UnaryOp::silu, x, "silu");
  record_unary("SiluBackward", x, out, x,
               [](const Tensor& s) { return apply(UnaryOp::silu_grad, s, "silu_backward"); });
  return out;
}

Tensor pow(const Tensor& x, double exponent) {
  ZAE_CHECK(x.defined(), "pow: undefined tensor");
  const DType sdt = scalar_dtype(exponent, x.dtype());
  ZAE_CHECK(is_floating(sdt) || exponent >= 0, "pow: integers to negative integer powers are not allowed (dtype ",
            x.dtype(), ", exponent ", exponent, ")");
  Tensor out = empty_out(x, "pow", promote_types(x.dtype(), sdt));
  if (exponent == 2.0) {
    binary_into(BinaryOp::mul, out, x, x, 1.0, "pow");
  } else {
    binary_into(BinaryOp::pow, out, x, scalar_tensor(exponent, {.dtype = sdt, .device = x.device()}), 1.0, "pow");
  }
  // d x^p = p x^(p-1); exactly 0 for p == 0 (avoids 0 * inf at x == 0).
  autograd::record("PowBackward", {x}, out, {x}, [exponent](const Tensor& g, const BackwardContext& ctx) {
    if (exponent == 0.0) return std::vector<Tensor>{zeros_like(g)};
    const Tensor& s = ctx.saved[0];
    Tensor d = exponent == 2.0 ? mul(s, 2.0) : mul(pow(s, exponent - 1.0), exponent);
    return std::vector<Tensor>{mul(g, d)};
  });
  return out;
}

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  ZAE_CHECK(x.defined(), "clamp: undefined tensor");
  ZAE_CHECK(min.has_value() || max.has_value(), "clamp: at least one of min and max must be given");
  DType dt = x.dtype();
  if (min) dt = promote_types(dt, scalar_dtype(*min, x.dtype()));
  if (max) dt = promote_types(dt, scalar_dtype(*max, x.dtype()));
  Tensor out = empty_out(x, "clamp", dt);
  // max(x, min) then min(., max): NaN propagates, and min > max gives max everywhere (as torch).
  const Tensor* src = &x;
  if (min) {
    binary_into(BinaryOp::maximum, out, x, scalar_tensor(*min, {.dtype = dt, .device = x.device()}), 1.0, "clamp");
    src = &out;
  }
  if (max)
    binary_into(BinaryOp::minimum, out, *src, scalar_tensor(*max, {.dtype = dt, .device = x.device()}), 1.0,
                "clamp");
  // Gradient passes where min <= x <= max.
  autograd::record("ClampBackward", {x}, out, {x}, [min, max](const Tensor& g, const BackwardContext& ctx) {
    const Tensor& s = ctx.saved[0];
    Tensor zero = scalar_tensor(0.0, {.dtype = g.dtype(), .device = g.device()});
    Tensor d = g;
    if (min) d = where(ge(s, *min), d, zero);
    if (max) d = where(le(s, *max), d, zero);
    return std::vector<Tensor>{d};
  });
  return out;
}

}  // namespace zae
