// The binary, comparison, select and cast functors of the CUDA elementwise kernels,
// written expression for expression as the CPU twins (kernels/cpu/binary.cpp,
// kernels/cpu/copy.cpp), plus the adapters that widen, apply and narrow like the CPU
// loops (`o[i] = R(f(static_cast<A>(x[i]), static_cast<A>(y[i])))`) and the op switches
// (visit_binary, visit_compare). Host-callable so tests/test_kernels_simt.cpp checks them
// against the CPU kernels without a GPU.
// Invariants: maximum/minimum propagate NaN; integer pow wraps like unsigned arithmetic;
// integer division never reaches Div (the launcher rejects it).
#pragma once

#include <type_traits>

#include "kernels/cpu/binary.h"
#include "kernels/macros.h"
#include "kernels/numeric.h"
#include "kernels/simt/convert.h"
#include "kernels/simt/math.h"

namespace zae::kernels::simt {

/// out = T(op(A(x), A(y))).
template <class T, class Op>
struct BinaryFn {
  Op op;
  ZAE_INLINE T operator()(T x, T y) const { return narrow<T>(op(widen(x), widen(y))); }
};

/// out = op(A(x), A(y)) as bool.
template <class T, class Op>
struct CompareFn {
  Op op;
  ZAE_INLINE bool operator()(T x, T y) const { return op(widen(x), widen(y)); }
};

/// out = cond ? x : y (T: an unsigned type of the element's size; values move as bits).
template <class T>
struct WhereFn {
  ZAE_INLINE T operator()(bool cond, T x, T y) const { return cond ? x : y; }
};

/// dst = cast<Dst>(src).
template <class Dst, class Src>
struct CastFn {
  ZAE_INLINE Dst operator()(Src v) const { return cast<Dst>(v); }
};

/// out = value (T: an unsigned type of the element's size holding the value's bits).
template <class T>
struct FillFn {
  T value;
  ZAE_INLINE T operator()() const { return value; }
};

namespace binary_ops {

template <class A>
struct Add {
  A alpha;
  ZAE_INLINE A operator()(A x, A y) const { return static_cast<A>(x + alpha * y); }
};
template <class A>
struct Sub {
  A alpha;
  ZAE_INLINE A operator()(A x, A y) const { return static_cast<A>(x - alpha * y); }
};
struct AddPlain {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return static_cast<A>(x + y);
  }
};
struct SubPlain {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return static_cast<A>(x - y);
  }
};
struct Mul {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return static_cast<A>(x * y);
  }
};
struct Div {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return x / y;
  }
};
template <class A>
ZAE_INLINE bool is_nan(A x) {
  if constexpr (std::is_floating_point_v<A>)
    return x != x;
  else
    return false;
}
struct Maximum {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return (x > y || is_nan(x)) ? x : y;
  }
};
struct Minimum {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    return (x < y || is_nan(x)) ? x : y;
  }
};
struct Pow {
  template <class A>
  ZAE_INLINE A operator()(A x, A y) const {
    if constexpr (std::is_floating_point_v<A>) {
      return math::pow(x, y);
    } else {
      // Integer power by squaring, wrapping like the hardware (unsigned arithmetic is defined).
      using U = std::make_unsigned_t<A>;
      if constexpr (std::is_signed_v<A>) {
        if (y < 0) {
          if (x == 1) return A(1);
          if (x == -1) return (y & 1) ? A(-1) : A(1);
          return A(0);
        }
      }
      U base = static_cast<U>(x), result = 1;
      for (A e = y; e > 0; e >>= 1) {
        if (e & 1) result = static_cast<U>(result * base);
        base = static_cast<U>(base * base);
      }
      return static_cast<A>(result);
    }
  }
};

struct Eq {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x == y;
  }
};
struct Ne {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x != y;
  }
};
struct Lt {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x < y;
  }
};
struct Le {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x <= y;
  }
};
struct Gt {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x > y;
  }
};
struct Ge {
  template <class A>
  ZAE_INLINE bool operator()(A x, A y) const {
    return x >= y;
  }
};

}  // namespace binary_ops

/// Calls fn(BinaryFn<T, Op>{...}) for `op` (the switch of the CPU twin's binary<T>: add
/// and sub with alpha == 1 take the plain functors); false when `op` is not defined for T.
template <class T, class Fn>
bool visit_binary(cpu::BinaryKind op, acc_t<T> alpha, Fn&& fn) {
  namespace o = binary_ops;
  using A = acc_t<T>;
  using K = cpu::BinaryKind;
  auto call = [&](auto op_value) {
    fn(BinaryFn<T, decltype(op_value)>{op_value});
    return true;
  };
  switch (op) {
    case K::add: return alpha == A(1) ? call(o::AddPlain{}) : call(o::Add<A>{alpha});
    case K::sub: return alpha == A(1) ? call(o::SubPlain{}) : call(o::Sub<A>{alpha});
    case K::mul: return call(o::Mul{});
    case K::maximum: return call(o::Maximum{});
    case K::minimum: return call(o::Minimum{});
    case K::pow: return call(o::Pow{});
    case K::div:
      if constexpr (is_floating_v<T>) return call(o::Div{});
      break;
  }
  return false;
}

/// Calls fn(CompareFn<T, Op>{}) for `op`; false for an unknown op.
template <class T, class Fn>
bool visit_compare(cpu::CompareKind op, Fn&& fn) {
  namespace o = binary_ops;
  using K = cpu::CompareKind;
  auto call = [&](auto op_value) {
    fn(CompareFn<T, decltype(op_value)>{op_value});
    return true;
  };
  switch (op) {
    case K::eq: return call(o::Eq{});
    case K::ne: return call(o::Ne{});
    case K::lt: return call(o::Lt{});
    case K::le: return call(o::Le{});
    case K::gt: return call(o::Gt{});
    case K::ge: return call(o::Ge{});
  }
  return false;
}

}  // namespace zae::kernels::simt
