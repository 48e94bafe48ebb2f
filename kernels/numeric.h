// Half (IEEE binary16) and BFloat16 storage types with round-to-nearest-even
// conversions from float. Arithmetic happens in float: kernels load, widen,
// compute, and narrow on store (acc_t<T> names the compute type).
// Invariant: the bit patterns are exactly those of IEEE/bfloat16; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/macros.h"

namespace zae {

namespace detail {
ZAE_INLINE uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
ZAE_INLINE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

/// float -> bfloat16 bits, round to nearest even; NaN is kept quiet.
ZAE_INLINE uint16_t float_to_bf16_bits(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
ZAE_INLINE float bf16_bits_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

/// float -> IEEE half bits, round to nearest even, overflow to inf, subnormals exact.
ZAE_INLINE uint16_t float_to_half_bits(float f) {
  uint32_t u = float_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Scale so that the half subnormal unit (2^-24) becomes 1 and round to nearest even.
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exp;  // 113 <= exp < 113+? ; value = mant * 2^(exp-150); unit 2^-24
    // value / 2^-24 = mant * 2^(exp - 126) = mant >> (126 - exp)
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half_point = 1u << (shift - 1u);
    if (rem > half_point || (rem == half_point && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits.
  uint32_t v = abs - 0x38000000u;  // exponent - 112
  v += 0xfffu + ((v >> 13) & 1u);
  return static_cast<uint16_t>(sign | (v >> 13));
}
ZAE_INLINE float half_bits_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    // Subnormal: value = mant * 2^-24, exact in float.
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}
}  // namespace detail

/// IEEE 754 binary16. Storage only; converts to and from float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  ZAE_HD Half(float f) : bits(detail::float_to_half_bits(f)) {}
  ZAE_HD operator float() const { return detail::half_bits_to_float(bits); }
  static ZAE_HD Half from_bits(uint16_t b) {
    Half h;
    h.bits = b;
    return h;
  }
};

/// bfloat16: the top 16 bits of a float32. Storage only; converts to and from float.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  ZAE_HD BFloat16(float f) : bits(detail::float_to_bf16_bits(f)) {}
  ZAE_HD operator float() const { return detail::bf16_bits_to_float(bits); }
  static ZAE_HD BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};

/// The type arithmetic on T is carried out in (float for the 16-bit floats).
template <class T>
struct AccType {
  using type = T;
};
template <>
struct AccType<Half> {
  using type = float;
};
template <>
struct AccType<BFloat16> {
  using type = float;
};
template <class T>
using acc_t = typename AccType<T>::type;

template <class T>
inline constexpr bool is_floating_v =
    std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

}  // namespace zae
