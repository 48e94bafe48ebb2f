// Portable math: functions that give the same bits on the host and on a CUDA device,
// for the places where the CPU and CUDA paths must agree exactly (Box-Muller in
// kernels/philox.h). libm's and CUDA's log/sin/cos are not correctly rounded and differ
// in the last bits; these are built from IEEE +, *, /, sqrt and an explicit fused
// multiply-add (all correctly rounded on both sides), so they agree everywhere.
// Invariants: every product that feeds an addition goes through fmad(), so no compiler
// contraction (-ffp-contract / nvcc --fmad) can change a result; accuracy is within
// 2 ulp of the true value (checked against long double in tests/test_portable_math.cpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/macros.h"

namespace zae::portable {

/// a * b + c with one rounding, on host and device.
ZAE_INLINE double fmad(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return ::fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

/// Correctly rounded square root, on host and device.
ZAE_INLINE double sqrt_rn(double x) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

/// The double whose bits are `u`.
ZAE_INLINE double bits_to_double(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  static_assert(sizeof(d) == sizeof(u));
  __builtin_memcpy(&d, &u, sizeof(d));
  return d;
#endif
}

/// floor(log2(x)) for x >= 1.
ZAE_INLINE int floor_log2(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return 63 - __clzll(static_cast<long long>(x));
#else
  return 63 - __builtin_clzll(x);
#endif
}

/// log(x / 2^32) for an integer 1 <= x <= 2^32: the log of a Philox word mapped to (0, 1].
/// x = 2^e * m with m in [sqrt(1/2), sqrt(2)); log(1 + f) for f = m - 1 from
/// 2 atanh(s), s = f / (2 + f), written as f - s (f - 2 s^2 Q(s^2)) so the exact f dominates.
ZAE_INLINE double log_word_fraction(uint64_t x) {
  int e = floor_log2(x);
  double m = static_cast<double>(x) * bits_to_double(static_cast<uint64_t>(1023 - e) << 52);  // exact, [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  const double f = m - 1.0;  // exact (Sterbenz)
  const double s = f / (2.0 + f);
  const double z = s * s;
  // Q(z) = sum_{k=1..10} z^(k-1) / (2k + 1): |s| <= 0.1716, so z^10 / 23 < 2^-54.
  double q = 1.0 / 21;
  q = fmad(q, z, 1.0 / 19);
  q = fmad(q, z, 1.0 / 17);
  q = fmad(q, z, 1.0 / 15);
  q = fmad(q, z, 1.0 / 13);
  q = fmad(q, z, 1.0 / 11);
  q = fmad(q, z, 1.0 / 9);
  q = fmad(q, z, 1.0 / 7);
  q = fmad(q, z, 1.0 / 5);
  q = fmad(q, z, 1.0 / 3);
  const double h = fmad(-2.0 * z, q, f);  // f - 2 z Q
  const double log_m = fmad(-s, h, f);    // f - s (f - 2 z Q) = 2 atanh(s)
  // k ln2 with ln2 = hi + lo; hi has 40 significant bits, so k * hi is exact for |k| <= 32.
  constexpr double kLn2Hi = 0.6931471805592082, kLn2Lo = 7.371002565167799e-13;
  const double k = static_cast<double>(e - 32);
  return fmad(k, kLn2Hi, fmad(k, kLn2Lo, log_m));
}

/// sin and cos of 2 pi w / 2^32 for a 32-bit word w (an angle in turns, exact in the word).
/// The quadrant comes from the top bits (exactly), the rest is an angle in [-pi/4, pi/4)
/// evaluated with Taylor series to x^17 / x^18 (truncation below 2^-54).
ZAE_INLINE void sincos_turns(uint32_t w, double& sin_out, double& cos_out) {
  const uint32_t n = ((w + (1u << 29)) >> 30) & 3u;                  // nearest quarter turn
  const int32_t r = static_cast<int32_t>(w - (n << 30));            // in [-2^29, 2^29)
  const double x = static_cast<double>(r) * 1.4629180792671596e-09;  // r * pi / 2^31
  const double z = x * x;
  // sin x = x + x z S(z), S(z) = sum_{k=1..8} (-1)^k z^(k-1) / (2k+1)!
  double sp = 1.0 / 355687428096000.0;  // 1/17!
  sp = fmad(sp, z, -1.0 / 1307674368000.0);
  sp = fmad(sp, z, 1.0 / 6227020800.0);
  sp = fmad(sp, z, -1.0 / 39916800.0);
  sp = fmad(sp, z, 1.0 / 362880.0);
  sp = fmad(sp, z, -1.0 / 5040.0);
  sp = fmad(sp, z, 1.0 / 120.0);
  sp = fmad(sp, z, -1.0 / 6.0);
  const double s = fmad(x * z, sp, x);
  // cos x = 1 + z (-1/2 + z C(z)), C(z) = sum_{k=2..9} (-1)^k z^(k-2) / (2k)!
  double cp = -1.0 / 6402373705728000.0;  // -1/18!
  cp = fmad(cp, z, 1.0 / 20922789888000.0);
  cp = fmad(cp, z, -1.0 / 87178291200.0);
  cp = fmad(cp, z, 1.0 / 479001600.0);
  cp = fmad(cp, z, -1.0 / 3628800.0);
  cp = fmad(cp, z, 1.0 / 40320.0);
  cp = fmad(cp, z, -1.0 / 720.0);
  cp = fmad(cp, z, 1.0 / 24.0);
  const double c = fmad(z, fmad(z, cp, -0.5), 1.0);
  switch (n) {
    case 0: sin_out = s; cos_out = c; break;
    case 1: sin_out = c; cos_out = -s; break;
    case 2: sin_out = -s; cos_out = -c; break;
    default: sin_out = -c; cos_out = s; break;
  }
}

}  // namespace zae::portable
