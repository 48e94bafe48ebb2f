// CPU unary kernels. One templated loop per op functor: the switch on the op runs
// once per call, the element loops hold no branches on the op. Runs dense for both
// operands take a plain pointer loop (auto-vectorized for the cheap ops); other runs
// use their strides. parallel_runs splits the work over threads (and visits transposed
// operands in cache-friendly blocks).
#include "kernels/cpu/unary.h"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cpu/elementwise_runs.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu {

namespace {

// Grains: memory-bound ops split at the default grain, transcendental ones earlier.
constexpr int64_t kCheapGrain = kDefaultGrain;
constexpr int64_t kMathGrain = 8192;

template <class T, class F>
void run_unary(const StridedIter<2>& it, T* out, const T* a, int64_t grain, F f) {
  using A = acc_t<T>;
  parallel_runs(it, grain, [&](const auto& off, int64_t count, const auto& st) {
    T* o = out + off[0];      // (count) at stride st[0]
    const T* x = a + off[1];  // (count) at stride st[1]
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < count; ++i) o[i] = T(f(static_cast<A>(x[i])));
    } else {
      for (int64_t i = 0; i < count; ++i) o[i * st[0]] = T(f(static_cast<A>(x[i * st[1]])));
    }
  });
}

// ---- functors on the compute type A ---------------------------------------------------

// tanh in A: for float the vectorizable vec::tanh_f32 (<= 3 ulp, kernels/cpu/vec_math.h;
// libm's tanhf is a call per element), which kernels/simt/math.h's host tanh also uses, so
// the CUDA functors emulated on the host stay bit-identical to these twins.
using vec::tanh_of;

struct Neg {
  template <class A>
  A operator()(A x) const {
    return static_cast<A>(-x);
  }
};
struct Abs {
  template <class A>
  A operator()(A x) const {
    if constexpr (std::is_unsigned_v<A>)
      return x;
    else if constexpr (std::is_floating_point_v<A>)
      return std::abs(x);
    else
      return x < A(0) ? static_cast<A>(-x) : x;
  }
};
struct Relu {  // NaN stays NaN (as torch.relu)
  template <class A>
  A operator()(A x) const {
    return x < A(0) ? A(0) : x;
  }
};
struct Sign {  // 0 for 0 and NaN
  template <class A>
  A operator()(A x) const {
    return static_cast<A>(static_cast<int>(A(0) < x) - static_cast<int>(x < A(0)));
  }
};
struct Exp {
  template <class A>
  A operator()(A x) const {
    return std::exp(x);
  }
};
struct Log {
  template <class A>
  A operator()(A x) const {
    return std::log(x);
  }
};
struct Sqrt {
  template <class A>
  A operator()(A x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <class A>
  A operator()(A x) const {
    return A(1) / std::sqrt(x);
  }
};
struct Sin {
  template <class A>
  A operator()(A x) const {
    return std::sin(x);
  }
};
struct Cos {
  template <class A>
  A operator()(A x) const {
    return std::cos(x);
  }
};
struct Tanh {
  template <class A>
  A operator()(A x) const {
    return tanh_of(x);
  }
};
struct Sigmoid {
  template <class A>
  A operator()(A x) const {
    return A(1) / (A(1) + std::exp(-x));
  }
};
struct Silu {
  template <class A>
  A operator()(A x) const {
    return x / (A(1) + std::exp(-x));
  }
};

// gelu(x) = x * Phi(x), Phi the standard normal CDF.
struct Gelu {
  template <class A>
  A operator()(A x) const {
    const A inv_sqrt2 = A(1) / std::numbers::sqrt2_v<A>;
    return A(0.5) * x * (A(1) + std::erf(x * inv_sqrt2));
  }
};
// gelu_tanh(x) = 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715.
template <class A>
constexpr A kGeluK = std::numbers::sqrt2_v<A> * std::numbers::inv_sqrtpi_v<A>;
template <class A>
constexpr A kGeluC = A(0.044715);
struct GeluTanh {
  template <class A>
  A operator()(A x) const {
    A inner = kGeluK<A> * (x + kGeluC<A> * x * x * x);
    return A(0.5) * x * (A(1) + tanh_of(inner));
  }
};
// d gelu / dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
struct GeluGrad {
  template <class A>
  A operator()(A x) const {
    const A inv_sqrt2 = A(1) / std::numbers::sqrt2_v<A>;
    const A inv_sqrt2pi = inv_sqrt2 * std::numbers::inv_sqrtpi_v<A>;
    A cdf = A(0.5) * (A(1) + std::erf(x * inv_sqrt2));
    A pdf = std::exp(A(-0.5) * x * x) * inv_sqrt2pi;
    return cdf + x * pdf;
  }
};
// d gelu_tanh / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3)).
struct GeluTanhGrad {
  template <class A>
  A operator()(A x) const {
    A t = tanh_of(kGeluK<A> * (x + kGeluC<A> * x * x * x));
    A d_inner = kGeluK<A> * (A(1) + A(3) * kGeluC<A> * x * x);
    return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * d_inner;
  }
};
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
struct SiluGrad {
  template <class A>
  A operator()(A x) const {
    A s = A(1) / (A(1) + std::exp(-x));
    return s * (A(1) + x * (A(1) - s));
  }
};
struct SigmoidGradFromOut {
  template <class A>
  A operator()(A y) const {
    return y * (A(1) - y);
  }
};
struct TanhGradFromOut {
  template <class A>
  A operator()(A y) const {
    return A(1) - y * y;
  }
};

}  // namespace

template <class T>
void unary(UnaryKind op, const StridedIter<2>& it, T* out, const T* a) {
  using K = UnaryKind;
  switch (op) {  // ops defined for every element type
    case K::neg: return run_unary(it, out, a, kCheapGrain, Neg{});
    case K::abs: return run_unary(it, out, a, kCheapGrain, Abs{});
    case K::relu: return run_unary(it, out, a, kCheapGrain, Relu{});
    case K::sign: return run_unary(it, out, a, kCheapGrain, Sign{});
    default: break;
  }
  if constexpr (is_floating_v<T>) {
    switch (op) {
      case K::exp: return run_unary(it, out, a, kMathGrain, Exp{});
      case K::log: return run_unary(it, out, a, kMathGrain, Log{});
      case K::sqrt: return run_unary(it, out, a, kCheapGrain, Sqrt{});
      case K::rsqrt: return run_unary(it, out, a, kCheapGrain, Rsqrt{});
      case K::sin: return run_unary(it, out, a, kMathGrain, Sin{});
      case K::cos: return run_unary(it, out, a, kMathGrain, Cos{});
      case K::tanh: return run_unary(it, out, a, kMathGrain, Tanh{});
      case K::sigmoid: return run_unary(it, out, a, kMathGrain, Sigmoid{});
      case K::gelu: return run_unary(it, out, a, kMathGrain, Gelu{});
      case K::gelu_tanh: return run_unary(it, out, a, kMathGrain, GeluTanh{});
      case K::silu: return run_unary(it, out, a, kMathGrain, Silu{});
      case K::gelu_grad: return run_unary(it, out, a, kMathGrain, GeluGrad{});
      case K::gelu_tanh_grad: return run_unary(it, out, a, kMathGrain, GeluTanhGrad{});
      case K::silu_grad: return run_unary(it, out, a, kMathGrain, SiluGrad{});
      case K::sigmoid_grad_from_out: return run_unary(it, out, a, kCheapGrain, SigmoidGradFromOut{});
      case K::tanh_grad_from_out: return run_unary(it, out, a, kCheapGrain, TanhGradFromOut{});
      default: break;
    }
  }
  throw std::invalid_argument("kernels::cpu::unary: op " + std::to_string(static_cast<int>(op)) +
                              " is not defined for this element type");
}

template void unary<float>(UnaryKind, const StridedIter<2>&, float*, const float*);
template void unary<double>(UnaryKind, const StridedIter<2>&, double*, const double*);
template void unary<Half>(UnaryKind, const StridedIter<2>&, Half*, const Half*);
template void unary<BFloat16>(UnaryKind, const StridedIter<2>&, BFloat16*, const BFloat16*);
template void unary<int32_t>(UnaryKind, const StridedIter<2>&, int32_t*, const int32_t*);
template void unary<int64_t>(UnaryKind, const StridedIter<2>&, int64_t*, const int64_t*);
template void unary<uint8_t>(UnaryKind, const StridedIter<2>&, uint8_t*, const uint8_t*);

}  // namespace zae::kernels::cpu
