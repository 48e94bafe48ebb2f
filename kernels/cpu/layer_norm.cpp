// CPU layer_norm forward and backward (contract in layer_norm.h).
// Both directions are layer_norm_rows.h's row sweeps (shared with add_layer_norm):
// forward: the first pass sums the row of x, then variance and write; backward: the
// chunked, thread-count independent sweep, storing dx as computed.
#include "kernels/cpu/layer_norm.h"

#include <utility>

#include "kernels/cpu/layer_norm_rows.h"

namespace zae::kernels::cpu {

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd,
                        int64_t M, int64_t N, double eps) {
  using Acc = acc_t<T>;
  detail::layer_norm_forward_rows(weight, bias, y, mean, rstd, M, N, eps, [&](int64_t i) {
    const T* xr = x + i * N;  // (N)
    Acc s = 0;
    for (int64_t j = 0; j < N; ++j) s += static_cast<Acc>(xr[j]);
    return std::pair<const T*, Acc>(xr, s);
  });
}

template <class T>
void layer_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t M, int64_t N) {
  using Acc = acc_t<T>;
  detail::layer_norm_backward_rows(g, x, mean, rstd, weight, dx != nullptr, dweight, dbias, M, N,
                                   [&](int64_t i, int64_t j, Acc v) { dx[i * N + j] = static_cast<T>(v); });
}

#define ZAE_LAYER_NORM(T)                                                                                        \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, acc_t<T>*, int64_t, int64_t, \
                                      double);                                                                   \
  template void layer_norm_backward<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*, T*,  \
                                       T*, int64_t, int64_t);
ZAE_LAYER_NORM(float)
ZAE_LAYER_NORM(double)
ZAE_LAYER_NORM(Half)
ZAE_LAYER_NORM(BFloat16)
#undef ZAE_LAYER_NORM

}  // namespace zae::kernels::cpu
