// Element conversions shared by the CUDA elementwise kernels and their host tests:
// widen (storage type -> compute type acc_t<T>), narrow (compute type -> storage type)
// and cast<Dst>(src) between any two element types. On a device, Half and BFloat16 use
// the hardware round-to-nearest-even conversions; NaNs are rewritten to the bit patterns
// of the host conversions in kernels/numeric.h, so every value (NaN payloads included)
// converts to the same bits as on the CPU. On the host these are the CPU's conversions.
// Invariants: cast<Dst, Src> follows kernels/cpu/copy.cpp's convert() rule for rule
// (float -> integer truncates toward zero; -> bool is != 0); for values an integer type
// cannot hold the C++ result is undefined on the CPU, and here floating -> uint8 goes
// through int32 (the x86 scalar result for values in int32 range).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/macros.h"
#include "kernels/numeric.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace zae::kernels::simt {

/// Storage -> compute type: identity except Half / BFloat16 -> float.
template <class T>
ZAE_INLINE T widen(T x) {
  return x;
}
ZAE_INLINE float widen(Half x) {
#if defined(__CUDA_ARCH__)
  const float f = __half2float(__ushort_as_half(x.bits));
  if (f != f)  // NaN: keep the payload as detail::half_bits_to_float does
    return __uint_as_float((static_cast<uint32_t>(x.bits & 0x8000u) << 16) | 0x7f800000u |
                           (static_cast<uint32_t>(x.bits & 0x3ffu) << 13));
  return f;
#else
  return static_cast<float>(x);
#endif
}
ZAE_INLINE float widen(BFloat16 x) { return static_cast<float>(x); }  // a shift on both sides

/// Compute type -> storage type (T(v) on the CPU).
template <class T>
ZAE_INLINE T narrow(acc_t<T> v) {
  return T(v);
}
template <>
ZAE_INLINE Half narrow<Half>(float v) {
#if defined(__CUDA_ARCH__)
  if (v != v) return Half::from_bits(static_cast<uint16_t>(((__float_as_uint(v) >> 16) & 0x8000u) | 0x7e00u));
  return Half::from_bits(__half_as_ushort(__float2half_rn(v)));
#else
  return Half(v);
#endif
}
template <>
ZAE_INLINE BFloat16 narrow<BFloat16>(float v) {
#if defined(__CUDA_ARCH__)
  if (v != v) return BFloat16::from_bits(static_cast<uint16_t>((__float_as_uint(v) >> 16) | 0x40u));
  return BFloat16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(v)));
#else
  return BFloat16(v);
#endif
}

template <class T>
inline constexpr bool is_half_like_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

/// dst = Dst(src), rule for rule as kernels/cpu/copy.cpp.
template <class Dst, class Src>
ZAE_INLINE Dst cast(Src v) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return v;
  } else if constexpr (std::is_same_v<Dst, bool>) {
    if constexpr (is_half_like_v<Src>)
      return widen(v) != 0.0f;
    else
      return v != Src(0);
  } else if constexpr (is_half_like_v<Src>) {
    return cast<Dst>(widen(v));
  } else if constexpr (is_half_like_v<Dst>) {
    return narrow<Dst>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<Dst, uint8_t> && std::is_floating_point_v<Src>) {
    return static_cast<uint8_t>(static_cast<int32_t>(v));
  } else {
    return static_cast<Dst>(v);
  }
}

}  // namespace zae::kernels::simt
