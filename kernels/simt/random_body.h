// Per-thread bodies of the CUDA random kernels (uniform, normal, randint fills and
// dropout), host-callable so tests run them without a GPU. Each thread takes whole
// Philox counter blocks (grid-stride over blocks), so one block's words are computed
// once and spread over the elements that the CPU twins (kernels/cpu/fill.cpp,
// kernels/cpu/dropout.cpp) give them: element i of a draw uses block offset + i / per
// and word(s) i % per, per = 4 for float draws, 2 for double draws.
// Invariant: for the same (seed, offset) every element gets the CPU's exact bits.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/macros.h"
#include "kernels/numeric.h"
#include "kernels/philox.h"
#include "kernels/simt/convert.h"
#include "kernels/simt/offset_calc.h"

namespace zae::kernels::simt {

/// Elements of a uniform draw per Philox block (kernels/cpu/fill.cpp's uniform).
template <class T>
inline constexpr int kUniformPerBlock = std::is_same_v<T, double> ? 2 : 4;

/// Element j of block w of a uniform [low, high) draw, as kernels/cpu/fill.cpp's uniform<T>.
template <class T>
ZAE_INLINE T uniform_value(const philox::U32x4& w, int j, double low, double high) {
  if constexpr (std::is_same_v<T, double>) {
    return low + (high - low) * philox::to_unit_double(w.v[2 * j], w.v[2 * j + 1]);
  } else if constexpr (is_half_like_v<T>) {
    // Keep only as many bits as T's significand holds (11 / 8), so U is exact in T and below 1.
    constexpr int kDigits = std::is_same_v<T, Half> ? 11 : 8;
    const float u = static_cast<float>(w.v[j] >> (32 - kDigits)) * (1.0f / static_cast<float>(1u << kDigits));
    return narrow<T>(static_cast<float>(low + (high - low) * static_cast<double>(u)));
  } else {
    const float u = philox::to_unit_float(w.v[j]);
    return T(static_cast<float>(low + (high - low) * static_cast<double>(u)));
  }
}

/// out[0, n) = uniform draw at (seed, offset); thread `tid` of `nthreads`.
template <class T>
ZAE_INLINE void uniform_body(int64_t tid, int64_t nthreads, T* out, int64_t n, uint64_t seed, uint64_t offset,
                             double low, double high) {
  constexpr int per = kUniformPerBlock<T>;
  const int64_t blocks = (n + per - 1) / per;
  for (int64_t b = tid; b < blocks; b += nthreads) {
    const philox::U32x4 w = philox::block(seed, offset + static_cast<uint64_t>(b));
    ZAE_UNROLL
    for (int j = 0; j < per; ++j) {
      const int64_t i = b * per + j;
      if (i < n) out[i] = uniform_value<T>(w, j, low, high);
    }
  }
}

/// out[0, n) = mean + std * standard normal draw at (seed, offset) (Box-Muller on word
/// pairs, four elements per block, as philox::normal).
template <class T>
ZAE_INLINE void normal_body(int64_t tid, int64_t nthreads, T* out, int64_t n, uint64_t seed, uint64_t offset,
                            double mean, double std) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = tid; b < blocks; b += nthreads) {
    const philox::U32x4 w = philox::block(seed, offset + static_cast<uint64_t>(b));
    ZAE_UNROLL
    for (int pair = 0; pair < 2; ++pair) {
      const int64_t i = b * 4 + pair * 2;
      if (i >= n) break;
      double z[2];
      philox::box_muller(w.v[2 * pair], w.v[2 * pair + 1], z[0], z[1]);
      ZAE_UNROLL
      for (int h = 0; h < 2; ++h) {
        if (i + h >= n) break;
        const double v = mean + std * z[h];
        if constexpr (std::is_same_v<T, double>)
          out[i + h] = v;
        else
          out[i + h] = narrow<T>(static_cast<float>(v));
      }
    }
  }
}

/// out[0, n) = low + floor(U * (high - low)) from a double draw (two elements per block).
template <class T>
ZAE_INLINE void randint_body(int64_t tid, int64_t nthreads, T* out, int64_t n, uint64_t seed, uint64_t offset,
                             int64_t low, int64_t high) {
  const double span = static_cast<double>(high - low);
  const int64_t blocks = (n + 1) / 2;
  for (int64_t b = tid; b < blocks; b += nthreads) {
    const philox::U32x4 w = philox::block(seed, offset + static_cast<uint64_t>(b));
    ZAE_UNROLL
    for (int j = 0; j < 2; ++j) {
      const int64_t i = b * 2 + j;
      if (i >= n) break;
      const double u = philox::to_unit_double(w.v[2 * j], w.v[2 * j + 1]);
      const int64_t q = static_cast<int64_t>(u * span);
      const int64_t v = low + (q < high - low - 1 ? q : high - low - 1);
      if constexpr (is_half_like_v<T>)
        out[i] = narrow<T>(static_cast<float>(v));
      else
        out[i] = static_cast<T>(v);
    }
  }
}

/// Dropout forward over a 32-bit chunk (operands 0 = out, 1 = x, 2 = mask) whose first
/// element has row-major index linear_begin: element g is kept iff
/// philox::uniform_float(seed, offset, g) >= p, then out = x * scale, else 0.
template <class T>
ZAE_INLINE void dropout_body(int64_t tid, int64_t nthreads, const OffsetCalc<3>& oc, uint32_t n,
                             int64_t linear_begin, T* out, const T* x, bool* mask, float p, acc_t<T> scale,
                             uint64_t seed, uint64_t offset) {
  using A = acc_t<T>;
  const int64_t linear_end = linear_begin + n;
  const int64_t first = linear_begin / 4, last = (linear_end - 1) / 4;
  for (int64_t b = first + tid; b <= last; b += nthreads) {
    const philox::U32x4 w = philox::block(seed, offset + static_cast<uint64_t>(b));
    ZAE_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t g = b * 4 + j;
      if (g < linear_begin || g >= linear_end) continue;
      int32_t off[3];
      oc.get(static_cast<uint32_t>(g - linear_begin), off);
      const bool keep = philox::to_unit_float(w.v[j]) >= p;
      mask[off[2]] = keep;
      out[off[0]] = keep ? narrow<T>(static_cast<A>(widen(x[off[1]]) * scale)) : narrow<T>(A(0));
    }
  }
}

/// Dropout backward for one element: d_x = mask ? g * scale : 0.
template <class T>
struct DropoutBackwardFn {
  acc_t<T> scale;
  ZAE_INLINE T operator()(T g, bool keep) const {
    using A = acc_t<T>;
    return keep ? narrow<T>(static_cast<A>(widen(g) * scale)) : narrow<T>(A(0));
  }
};

}  // namespace zae::kernels::simt
