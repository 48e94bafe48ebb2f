#include "kernels/cpu/dropout.h"

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"
#include "kernels/philox.h"

namespace zae::kernels::cpu {

template <class T>
void dropout_forward(const StridedIter<3>& it, T* out, const T* x, bool* mask, float p, double scale, uint64_t seed,
                     uint64_t offset) {
  using A = acc_t<T>;
  const A s = static_cast<A>(scale);
  parallel_for(it.numel(), 4096, [&](int64_t b, int64_t e) {
    uint64_t i = static_cast<uint64_t>(b);  // row-major position of the next element
    for_each_run(it, b, e, [&](const auto& off, int64_t count, const auto& st) {
      T* o = out + off[0];
      const T* xs = x + off[1];
      bool* m = mask + off[2];
      for (int64_t k = 0; k < count; ++k, ++i) {
        const bool keep = philox::uniform_float(seed, offset, i) >= p;
        m[k * st[2]] = keep;
        o[k * st[0]] = keep ? T(static_cast<A>(xs[k * st[1]]) * s) : T(A(0));
      }
    });
  });
}

template <class T>
void dropout_backward(const StridedIter<3>& it, T* d_x, const T* g, const bool* mask, double scale) {
  using A = acc_t<T>;
  const A s = static_cast<A>(scale);
  parallel_for(it.numel(), kDefaultGrain, [&](int64_t b, int64_t e) {
    for_each_run(it, b, e, [&](const auto& off, int64_t count, const auto& st) {
      T* d = d_x + off[0];
      const T* gs = g + off[1];
      const bool* m = mask + off[2];
      for (int64_t k = 0; k < count; ++k) d[k * st[0]] = m[k * st[2]] ? T(static_cast<A>(gs[k * st[1]]) * s) : T(A(0));
    });
  });
}

#define ZAE_DROPOUT(T)                                                                                             \
  template void dropout_forward<T>(const StridedIter<3>&, T*, const T*, bool*, float, double, uint64_t, uint64_t); \
  template void dropout_backward<T>(const StridedIter<3>&, T*, const T*, const bool*, double);
ZAE_DROPOUT(float)
ZAE_DROPOUT(double)
ZAE_DROPOUT(Half)
ZAE_DROPOUT(BFloat16)
#undef ZAE_DROPOUT

}  // namespace zae::kernels::cpu
