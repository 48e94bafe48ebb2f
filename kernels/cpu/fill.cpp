#include "kernels/cpu/fill.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"
#include "kernels/philox.h"

namespace zae::kernels::cpu {

template <class T>
void fill(const StridedIter<1>& it, T* out, T value) {
  parallel_for(it.numel(), kDefaultGrain, [&](int64_t b, int64_t e) {
    for_each_run(it, b, e, [&](const auto& off, int64_t count, const auto& st) {
      T* o = out + off[0];
      if (st[0] == 1) {
        for (int64_t i = 0; i < count; ++i) o[i] = value;
      } else {
        for (int64_t i = 0; i < count; ++i) o[i * st[0]] = value;
      }
    });
  });
}

template <class T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if constexpr (std::is_same_v<T, double>) {
        out[i] = low + (high - low) * philox::uniform_double(seed, offset, static_cast<uint64_t>(i));
      } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
        // Keep only as many bits as T's significand holds (11 / 8), so U is exact in T and
        // never rounds up to 1 (a 24-bit U >= 1 - 2^-12 would narrow to 1.0 in half).
        constexpr int kDigits = std::is_same_v<T, Half> ? 11 : 8;
        uint32_t w = philox::block(seed, offset + static_cast<uint64_t>(i) / 4).v[i % 4];
        float u = static_cast<float>(w >> (32 - kDigits)) * (1.0f / static_cast<float>(1u << kDigits));
        out[i] = T(static_cast<float>(low + (high - low) * static_cast<double>(u)));
      } else {
        float u = philox::uniform_float(seed, offset, static_cast<uint64_t>(i));
        out[i] = T(static_cast<float>(low + (high - low) * static_cast<double>(u)));
      }
    }
  });
}

template <class T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double v = mean + std * philox::normal(seed, offset, static_cast<uint64_t>(i));
      if constexpr (std::is_same_v<T, double>)
        out[i] = v;
      else
        out[i] = T(static_cast<float>(v));
    }
  });
}

template <class T>
void randint(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  const double span = static_cast<double>(high - low);
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double u = philox::uniform_double(seed, offset, static_cast<uint64_t>(i));
      int64_t v = low + std::min(static_cast<int64_t>(u * span), high - low - 1);
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
        out[i] = T(static_cast<float>(v));
      else
        out[i] = static_cast<T>(v);
    }
  });
}

template void fill<float>(const StridedIter<1>&, float*, float);
template void fill<double>(const StridedIter<1>&, double*, double);
template void fill<Half>(const StridedIter<1>&, Half*, Half);
template void fill<BFloat16>(const StridedIter<1>&, BFloat16*, BFloat16);
template void fill<int32_t>(const StridedIter<1>&, int32_t*, int32_t);
template void fill<int64_t>(const StridedIter<1>&, int64_t*, int64_t);
template void fill<uint8_t>(const StridedIter<1>&, uint8_t*, uint8_t);
template void fill<bool>(const StridedIter<1>&, bool*, bool);

#define ZAE_RANDOM_FLOAT(T)                                                     \
  template void uniform<T>(T*, int64_t, uint64_t, uint64_t, double, double);    \
  template void normal<T>(T*, int64_t, uint64_t, uint64_t, double, double);
ZAE_RANDOM_FLOAT(float)
ZAE_RANDOM_FLOAT(double)
ZAE_RANDOM_FLOAT(Half)
ZAE_RANDOM_FLOAT(BFloat16)
#undef ZAE_RANDOM_FLOAT
template void randint<float>(float*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<double>(double*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<Half>(Half*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<BFloat16>(BFloat16*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<int32_t>(int32_t*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<int64_t>(int64_t*, int64_t, uint64_t, uint64_t, int64_t, int64_t);
template void randint<uint8_t>(uint8_t*, int64_t, uint64_t, uint64_t, int64_t, int64_t);

}  // namespace zae::kernels::cpu
