// The unary elementwise functors of the CUDA kernels, on the compute type A, written
// expression for expression as the CPU twins in kernels/cpu/unary.cpp (same constants,
// same operation order), and UnaryFn, which widens, applies and narrows like the CPU
// loop `o[i] = T(f(static_cast<A>(x[i])))`, and visit_unary, the op switch. Host-callable
// so tests/test_kernels_simt.cpp checks them against the CPU kernels without a GPU.
// Invariant: integer A only reaches Neg, Abs, Relu and Sign (the launcher's switch).
#pragma once

#include <numbers>
#include <type_traits>

#include "kernels/cpu/unary.h"
#include "kernels/macros.h"
#include "kernels/numeric.h"
#include "kernels/simt/convert.h"
#include "kernels/simt/math.h"

namespace zae::kernels::simt {

/// out = T(op(A(x))) for one element.
template <class T, class Op>
struct UnaryFn {
  Op op;
  ZAE_INLINE T operator()(T x) const { return narrow<T>(op(widen(x))); }
};

namespace unary_ops {

struct Neg {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return static_cast<A>(-x);
  }
};
struct Abs {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    if constexpr (std::is_unsigned_v<A>)
      return x;
    else if constexpr (std::is_floating_point_v<A>)
      return math::fabs(x);
    else
      return x < A(0) ? static_cast<A>(-x) : x;
  }
};
struct Relu {  // NaN stays NaN
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    if constexpr (std::is_unsigned_v<A>)
      return x;  // x < 0 is never true
    else
      return x < A(0) ? A(0) : x;
  }
};
struct Sign {  // 0 for 0 and NaN
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    if constexpr (std::is_unsigned_v<A>)
      return static_cast<A>(A(0) < x);  // x < 0 is never true
    else
      return static_cast<A>(static_cast<int>(A(0) < x) - static_cast<int>(x < A(0)));
  }
};
struct Exp {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::exp(x);
  }
};
struct Log {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::log(x);
  }
};
struct Sqrt {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::sqrt(x);
  }
};
struct Rsqrt {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return A(1) / math::sqrt(x);
  }
};
struct Sin {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::sin(x);
  }
};
struct Cos {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::cos(x);
  }
};
struct Tanh {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return math::tanh(x);
  }
};
struct Sigmoid {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return A(1) / (A(1) + math::exp(-x));
  }
};
struct Silu {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    return x / (A(1) + math::exp(-x));
  }
};

// gelu(x) = x * Phi(x), Phi the standard normal CDF.
struct Gelu {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    const A inv_sqrt2 = A(1) / std::numbers::sqrt2_v<A>;
    return A(0.5) * x * (A(1) + math::erf(x * inv_sqrt2));
  }
};
// gelu_tanh(x) = 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715.
template <class A>
inline constexpr A kGeluK = std::numbers::sqrt2_v<A> * std::numbers::inv_sqrtpi_v<A>;
template <class A>
inline constexpr A kGeluC = A(0.044715);
struct GeluTanh {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    A inner = kGeluK<A> * (x + kGeluC<A> * x * x * x);
    return A(0.5) * x * (A(1) + math::tanh(inner));
  }
};
// d gelu / dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
struct GeluGrad {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    const A inv_sqrt2 = A(1) / std::numbers::sqrt2_v<A>;
    const A inv_sqrt2pi = inv_sqrt2 * std::numbers::inv_sqrtpi_v<A>;
    A cdf = A(0.5) * (A(1) + math::erf(x * inv_sqrt2));
    A pdf = math::exp(A(-0.5) * x * x) * inv_sqrt2pi;
    return cdf + x * pdf;
  }
};
// d gelu_tanh / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3)).
struct GeluTanhGrad {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    A t = math::tanh(kGeluK<A> * (x + kGeluC<A> * x * x * x));
    A d_inner = kGeluK<A> * (A(1) + A(3) * kGeluC<A> * x * x);
    return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * d_inner;
  }
};
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
struct SiluGrad {
  template <class A>
  ZAE_INLINE A operator()(A x) const {
    A s = A(1) / (A(1) + math::exp(-x));
    return s * (A(1) + x * (A(1) - s));
  }
};
struct SigmoidGradFromOut {
  template <class A>
  ZAE_INLINE A operator()(A y) const {
    return y * (A(1) - y);
  }
};
struct TanhGradFromOut {
  template <class A>
  ZAE_INLINE A operator()(A y) const {
    return A(1) - y * y;
  }
};

}  // namespace unary_ops

/// Calls fn(UnaryFn<T, Op>{}) for the functor of `op` (the switch of the CPU twin's
/// unary<T>); returns false, calling nothing, when `op` is not defined for T.
template <class T, class Fn>
bool visit_unary(cpu::UnaryKind op, Fn&& fn) {
  namespace u = unary_ops;
  using K = cpu::UnaryKind;
  auto call = [&](auto op_tag) {
    fn(UnaryFn<T, decltype(op_tag)>{op_tag});
    return true;
  };
  switch (op) {  // ops defined for every element type
    case K::neg: return call(u::Neg{});
    case K::abs: return call(u::Abs{});
    case K::relu: return call(u::Relu{});
    case K::sign: return call(u::Sign{});
    default: break;
  }
  if constexpr (is_floating_v<T>) {
    switch (op) {
      case K::exp: return call(u::Exp{});
      case K::log: return call(u::Log{});
      case K::sqrt: return call(u::Sqrt{});
      case K::rsqrt: return call(u::Rsqrt{});
      case K::sin: return call(u::Sin{});
      case K::cos: return call(u::Cos{});
      case K::tanh: return call(u::Tanh{});
      case K::sigmoid: return call(u::Sigmoid{});
      case K::gelu: return call(u::Gelu{});
      case K::gelu_tanh: return call(u::GeluTanh{});
      case K::silu: return call(u::Silu{});
      case K::gelu_grad: return call(u::GeluGrad{});
      case K::gelu_tanh_grad: return call(u::GeluTanhGrad{});
      case K::silu_grad: return call(u::SiluGrad{});
      case K::sigmoid_grad_from_out: return call(u::SigmoidGradFromOut{});
      case K::tanh_grad_from_out: return call(u::TanhGradFromOut{});
      default: break;
    }
  }
  return false;
}

}  // namespace zae::kernels::simt
