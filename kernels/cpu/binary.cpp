// CPU binary, comparison and where kernels. The op switch runs once per call; each
// op functor gets its own loops. Per run of the innermost dim: all operands dense ->
// a plain pointer loop (auto-vectorized); one input broadcast (stride 0) -> the same
// loop with that input hoisted as a scalar; anything else -> a strided loop.
// parallel_runs splits the work over threads (transposed operands in blocks).
#include "kernels/cpu/binary.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cpu/elementwise_runs.h"

namespace zae::kernels::cpu {

namespace {

constexpr int64_t kCheapGrain = kDefaultGrain;
constexpr int64_t kMathGrain = 8192;

// out[i] = R(f(A(a[i]), A(b[i]))) over the iterator; R is T for arithmetic, bool for comparisons.
template <class R, class T, class F>
void run_binary(const StridedIter<3>& it, R* out, const T* a, const T* b, int64_t grain, F f) {
  using A = acc_t<T>;
  parallel_runs(it, grain, [&](const auto& off, int64_t count, const auto& st) {
    R* o = out + off[0];      // (count) at stride st[0]
    const T* x = a + off[1];  // (count) at stride st[1]
    const T* y = b + off[2];  // (count) at stride st[2]
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < count; ++i) o[i] = R(f(static_cast<A>(x[i]), static_cast<A>(y[i])));
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const A yv = static_cast<A>(*y);
      for (int64_t i = 0; i < count; ++i) o[i] = R(f(static_cast<A>(x[i]), yv));
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const A xv = static_cast<A>(*x);
      for (int64_t i = 0; i < count; ++i) o[i] = R(f(xv, static_cast<A>(y[i])));
    } else {
      for (int64_t i = 0; i < count; ++i)
        o[i * st[0]] = R(f(static_cast<A>(x[i * st[1]]), static_cast<A>(y[i * st[2]])));
    }
  });
}

// ---- arithmetic functors on the compute type A ----------------------------------------

template <class A>
struct Add {
  A alpha;
  A operator()(A x, A y) const { return static_cast<A>(x + alpha * y); }
};
template <class A>
struct Sub {
  A alpha;
  A operator()(A x, A y) const { return static_cast<A>(x - alpha * y); }
};
struct AddPlain {
  template <class A>
  A operator()(A x, A y) const {
    return static_cast<A>(x + y);
  }
};
struct SubPlain {
  template <class A>
  A operator()(A x, A y) const {
    return static_cast<A>(x - y);
  }
};
struct Mul {
  template <class A>
  A operator()(A x, A y) const {
    return static_cast<A>(x * y);
  }
};
struct Div {
  template <class A>
  A operator()(A x, A y) const {
    return x / y;
  }
};
template <class A>
bool is_nan(A x) {
  if constexpr (std::is_floating_point_v<A>)
    return std::isnan(x);
  else
    return false;
}
struct Maximum {
  template <class A>
  A operator()(A x, A y) const {
    return (x > y || is_nan(x)) ? x : y;
  }
};
struct Minimum {
  template <class A>
  A operator()(A x, A y) const {
    return (x < y || is_nan(x)) ? x : y;
  }
};
struct Pow {
  template <class A>
  A operator()(A x, A y) const {
    if constexpr (std::is_floating_point_v<A>) {
      return std::pow(x, y);
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

// ---- comparison functors ------------------------------------------------------------------

struct Eq {
  template <class A>
  bool operator()(A x, A y) const {
    return x == y;
  }
};
struct Ne {
  template <class A>
  bool operator()(A x, A y) const {
    return x != y;
  }
};
struct Lt {
  template <class A>
  bool operator()(A x, A y) const {
    return x < y;
  }
};
struct Le {
  template <class A>
  bool operator()(A x, A y) const {
    return x <= y;
  }
};
struct Gt {
  template <class A>
  bool operator()(A x, A y) const {
    return x > y;
  }
};
struct Ge {
  template <class A>
  bool operator()(A x, A y) const {
    return x >= y;
  }
};

}  // namespace

template <class T>
void binary(BinaryKind op, const StridedIter<3>& it, T* out, const T* a, const T* b, acc_t<T> alpha) {
  using A = acc_t<T>;
  using K = BinaryKind;
  switch (op) {
    case K::add:
      if (alpha == A(1)) return run_binary(it, out, a, b, kCheapGrain, AddPlain{});
      return run_binary(it, out, a, b, kCheapGrain, Add<A>{alpha});
    case K::sub:
      if (alpha == A(1)) return run_binary(it, out, a, b, kCheapGrain, SubPlain{});
      return run_binary(it, out, a, b, kCheapGrain, Sub<A>{alpha});
    case K::mul: return run_binary(it, out, a, b, kCheapGrain, Mul{});
    case K::maximum: return run_binary(it, out, a, b, kCheapGrain, Maximum{});
    case K::minimum: return run_binary(it, out, a, b, kCheapGrain, Minimum{});
    case K::pow: return run_binary(it, out, a, b, kMathGrain, Pow{});
    case K::div:
      if constexpr (is_floating_v<T>) return run_binary(it, out, a, b, kCheapGrain, Div{});
      break;
  }
  throw std::invalid_argument("kernels::cpu::binary: op " + std::to_string(static_cast<int>(op)) +
                              " is not defined for this element type");
}

template <class T>
void compare(CompareKind op, const StridedIter<3>& it, bool* out, const T* a, const T* b) {
  using K = CompareKind;
  switch (op) {
    case K::eq: return run_binary(it, out, a, b, kCheapGrain, Eq{});
    case K::ne: return run_binary(it, out, a, b, kCheapGrain, Ne{});
    case K::lt: return run_binary(it, out, a, b, kCheapGrain, Lt{});
    case K::le: return run_binary(it, out, a, b, kCheapGrain, Le{});
    case K::gt: return run_binary(it, out, a, b, kCheapGrain, Gt{});
    case K::ge: return run_binary(it, out, a, b, kCheapGrain, Ge{});
  }
  throw std::invalid_argument("kernels::cpu::compare: unknown op " + std::to_string(static_cast<int>(op)));
}

template <class T>
void where(const StridedIter<4>& it, T* out, const bool* cond, const T* a, const T* b) {
  parallel_runs(it, kCheapGrain, [&](const auto& off, int64_t count, const auto& st) {
    T* o = out + off[0];  // (count) at stride st[0]
    // The mask read as bytes (char types may alias a bool): GCC vectorizes the select
    // below with `!= 0` on bytes, but not with a bool load.
    const unsigned char* c = reinterpret_cast<const unsigned char*>(cond + off[1]);
    const T* x = a + off[2];
    const T* y = b + off[3];
    // Dense paths load both sides unconditionally: a select, not a branch on the data
    // (a branch mispredicts on every other element of a random mask: ~10x slower).
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
      for (int64_t i = 0; i < count; ++i) {
        const T xv = x[i], yv = y[i];
        o[i] = c[i] != 0 ? xv : yv;
      }
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0 && st[3] == 1) {  // masked_fill: a is the fill value
      const T xv = *x;
      for (int64_t i = 0; i < count; ++i) {
        const T yv = y[i];
        o[i] = c[i] != 0 ? xv : yv;
      }
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < count; ++i) {
        const T xv = x[i];
        o[i] = c[i] != 0 ? xv : yv;
      }
    } else {
      for (int64_t i = 0; i < count; ++i) o[i * st[0]] = c[i * st[1]] ? x[i * st[2]] : y[i * st[3]];
    }
  });
}

#define ZAE_BINARY_ARITH(T) \
  template void binary<T>(BinaryKind, const StridedIter<3>&, T*, const T*, const T*, acc_t<T>);
#define ZAE_BINARY_ANY(T)                                                                   \
  template void compare<T>(CompareKind, const StridedIter<3>&, bool*, const T*, const T*); \
  template void where<T>(const StridedIter<4>&, T*, const bool*, const T*, const T*);
ZAE_BINARY_ARITH(float)
ZAE_BINARY_ARITH(double)
ZAE_BINARY_ARITH(Half)
ZAE_BINARY_ARITH(BFloat16)
ZAE_BINARY_ARITH(int32_t)
ZAE_BINARY_ARITH(int64_t)
ZAE_BINARY_ARITH(uint8_t)
ZAE_BINARY_ANY(float)
ZAE_BINARY_ANY(double)
ZAE_BINARY_ANY(Half)
ZAE_BINARY_ANY(BFloat16)
ZAE_BINARY_ANY(int32_t)
ZAE_BINARY_ANY(int64_t)
ZAE_BINARY_ANY(uint8_t)
ZAE_BINARY_ANY(bool)
#undef ZAE_BINARY_ARITH
#undef ZAE_BINARY_ANY

}  // namespace zae::kernels::cpu
