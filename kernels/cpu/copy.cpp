#include "kernels/cpu/copy.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu {

namespace {
template <class Dst, class Src>
inline Dst convert(Src v) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return v;
  } else if constexpr (std::is_same_v<Dst, bool>) {
    if constexpr (std::is_same_v<Src, Half> || std::is_same_v<Src, BFloat16>)
      return static_cast<float>(v) != 0.0f;
    else
      return v != Src(0);
  } else if constexpr (std::is_same_v<Src, Half> || std::is_same_v<Src, BFloat16>) {
    return static_cast<Dst>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<Dst, Half> || std::is_same_v<Dst, BFloat16>) {
    return Dst(static_cast<float>(v));
  } else {
    return static_cast<Dst>(v);
  }
}
}  // namespace

template <class Dst, class Src>
void copy_cast(const StridedIter<2>& it, Dst* dst, const Src* src) {
  const int64_t n = it.numel();
  if (it.contiguous()) {
    if constexpr (std::is_same_v<Dst, Src>) {
      parallel_for(n, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, (e - b) * sizeof(Dst)); });
    } else {
      parallel_for(n, kDefaultGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) dst[i] = convert<Dst>(src[i]);
      });
    }
    return;
  }
  parallel_for(n, kDefaultGrain, [&](int64_t b, int64_t e) {
    for_each_run(it, b, e, [&](const auto& off, int64_t count, const auto& st) {
      Dst* d = dst + off[0];
      const Src* s = src + off[1];
      for (int64_t i = 0; i < count; ++i) d[i * st[0]] = convert<Dst>(s[i * st[1]]);
    });
  });
}

#define ZAE_COPY_SRC(Dst)                                                  \
  template void copy_cast<Dst, float>(const StridedIter<2>&, Dst*, const float*);       \
  template void copy_cast<Dst, double>(const StridedIter<2>&, Dst*, const double*);     \
  template void copy_cast<Dst, Half>(const StridedIter<2>&, Dst*, const Half*);         \
  template void copy_cast<Dst, BFloat16>(const StridedIter<2>&, Dst*, const BFloat16*); \
  template void copy_cast<Dst, int32_t>(const StridedIter<2>&, Dst*, const int32_t*);   \
  template void copy_cast<Dst, int64_t>(const StridedIter<2>&, Dst*, const int64_t*);   \
  template void copy_cast<Dst, uint8_t>(const StridedIter<2>&, Dst*, const uint8_t*);   \
  template void copy_cast<Dst, bool>(const StridedIter<2>&, Dst*, const bool*);
ZAE_COPY_SRC(float)
ZAE_COPY_SRC(double)
ZAE_COPY_SRC(Half)
ZAE_COPY_SRC(BFloat16)
ZAE_COPY_SRC(int32_t)
ZAE_COPY_SRC(int64_t)
ZAE_COPY_SRC(uint8_t)
ZAE_COPY_SRC(bool)
#undef ZAE_COPY_SRC

}  // namespace zae::kernels::cpu
