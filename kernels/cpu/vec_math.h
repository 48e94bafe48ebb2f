// Branch-free float32 exp and tanh that the compiler vectorizes inside element loops
// (libm's expf / tanhf are opaque calls, one element at a time).
//
// Invariants:
// - exp_f32(x): max error 1 ulp against exp in double (0.96 ulp over all 2^32 floats;
//   subnormal results in units of the smallest subnormal); exp(-inf) = 0,
//   exp(+inf) = +inf, overflow gives +inf, NaN in gives NaN out.
// - tanh_f32(x): max error 3 ulp against tanh in double (2.42 ulp over all 2^32 floats,
//   near |x| = 0.03); odd (the sign of x, including -0, is kept), tanh(+-inf) = +-1,
//   NaN in gives NaN out. tests/test_vec_math.cpp checks both on a sample of the floats.
// - Pure float arithmetic with no implicit FMA (the library builds with
//   -ffp-contract=off), so the results do not depend on -march or on vector width.
//
// Method: y = k ln2 + r with k = round(y / ln2) (Cody-Waite split of ln2, so r is exact to
// ~1e-9), |r| <= ln2 / 2; expm1(r) by its Taylor series to degree 8 (truncation < 6e-10
// relative); 2^k from the exponent bits. tanh(|x|) = e / (e + 2) with e = expm1(2|x|),
// which has no cancellation for any |x|; |x| is clamped at 10, where tanh is 1 in float.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace zae::kernels::cpu::vec {

namespace detail {

inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;    // 355 / 512: k * kLn2Hi is exact for |k| < 2^15
inline constexpr float kLn2Lo = -2.12194440e-4f;  // ln 2 - kLn2Hi
inline constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23

/// v rounded to the nearest integer (ties to even) for |v| < 2^22; NaN stays NaN. Adding
/// and subtracting 1.5 * 2^23 vectorizes everywhere (std::floor needs -fno-trapping-math).
inline float round_small(float v) { return (v + kRoundMagic) - kRoundMagic; }

/// 2^k for an integer k in [-126, 127], from the exponent bits.
inline float pow2i(int32_t k) { return std::bit_cast<float>(static_cast<int32_t>((k + 127) << 23)); }

/// expm1(r) for |r| <= ln2 / 2 (+ rounding): r + r^2 (1/2! + r/3! + ... + r^6/8!).
inline float expm1_reduced(float r) {
  float q = 1.0f / 40320.0f;
  q = q * r + 1.0f / 5040.0f;
  q = q * r + 1.0f / 720.0f;
  q = q * r + 1.0f / 120.0f;
  q = q * r + 1.0f / 24.0f;
  q = q * r + 1.0f / 6.0f;
  q = q * r + 0.5f;
  return r + (r * r) * q;
}

}  // namespace detail

/// exp(x) in float32, vectorizable (contract in the file header).
inline float exp_f32(float x) {
  using namespace detail;
  float y = x > 89.0f ? 89.0f : x;  // exp(89) overflows; NaN passes both clamps
  y = y < -104.0f ? -104.0f : y;     // exp(-104) rounds to 0
  float kf = round_small(y * kLog2e);  // [-150, 128]
  kf = kf == kf ? kf : 0.0f;                 // NaN: any k, r carries the NaN
  const float r = (y - kf * kLn2Hi) - kf * kLn2Lo;
  const float p = 1.0f + expm1_reduced(r);  // exp(r) in [0.7, 1.42]
  const int32_t k = static_cast<int32_t>(kf);
  const int32_t k1 = k / 2, k2 = k - k1;  // both in [-75, 64]: the two scalings stay normal
  return (p * pow2i(k1)) * pow2i(k2);    // the first product is exact, one rounding in all
}

/// tanh(x) in float32, vectorizable (contract in the file header).
inline float tanh_f32(float x) {
  using namespace detail;
  float a = std::fabs(x);
  a = a > 10.0f ? 10.0f : a;  // tanh(10) is 1 in float; NaN passes
  const float y = a + a;      // [0, 20]
  float kf = round_small(y * kLog2e);  // [0, 29]
  kf = kf == kf ? kf : 0.0f;
  const float r = (y - kf * kLn2Hi) - kf * kLn2Lo;
  const float s = pow2i(static_cast<int32_t>(kf));
  const float e = s * expm1_reduced(r) + (s - 1.0f);  // expm1(y) >= 0
  return std::copysign(e / (e + 2.0f), x);
}

/// exp in a kernel's compute type A: exp_f32 for float, the C library's otherwise.
template <class A>
inline A exp_of(A x) {
  if constexpr (std::is_same_v<A, float>)
    return exp_f32(x);
  else
    return std::exp(x);
}

/// tanh in a kernel's compute type A: tanh_f32 for float, the C library's otherwise.
template <class A>
inline A tanh_of(A x) {
  if constexpr (std::is_same_v<A, float>)
    return tanh_f32(x);
  else
    return std::tanh(x);
}

}  // namespace zae::kernels::cpu::vec
