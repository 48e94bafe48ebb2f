// CPU add_layer_norm forward and backward (contract in add_layer_norm.h).
// Forward: layer_norm's row sweep (layer_norm_rows.h) whose first pass adds, writes sum
// and accumulates its row sum; the variance and output passes read sum back from cache.
// Backward: layer_norm's chunked row sweep (layer_norm_rows.h, thread-count
// independent), adding g_sum to each element of d_sum before it is rounded.
#include "kernels/cpu/add_layer_norm.h"

#include <utility>

#include "kernels/cpu/layer_norm_rows.h"

namespace zae::kernels::cpu {

template <class T>
void add_layer_norm_forward(const T* x, const T* residual, const T* weight, const T* bias, T* sum, T* y,
                            acc_t<T>* mean, acc_t<T>* rstd, int64_t M, int64_t N, double eps) {
  using Acc = acc_t<T>;
  detail::layer_norm_forward_rows(weight, bias, y, mean, rstd, M, N, eps, [&](int64_t i) {
    const T* xr = x + i * N;         // (N)
    const T* rr = residual + i * N;  // (N)
    T* sr = sum + i * N;             // (N)
    Acc s = 0;
    for (int64_t j = 0; j < N; ++j) {
      const T v = static_cast<T>(static_cast<Acc>(xr[j]) + static_cast<Acc>(rr[j]));
      sr[j] = v;
      s += static_cast<Acc>(v);
    }
    return std::pair<const T*, Acc>(sr, s);
  });
}

template <class T>
void add_layer_norm_backward(const T* g_out, const T* g_sum, const T* sum, const acc_t<T>* mean,
                             const acc_t<T>* rstd, const T* weight, T* d_sum, T* dweight, T* dbias, int64_t M,
                             int64_t N) {
  using Acc = acc_t<T>;
  // d_sum = g_sum + d layer_norm(sum) / d sum, added in acc_t before the one rounding.
  detail::layer_norm_backward_rows(g_out, sum, mean, rstd, weight, d_sum != nullptr, dweight, dbias, M, N,
                                   [&](int64_t i, int64_t j, Acc v) {
                                     if (g_sum) v = static_cast<Acc>(g_sum[i * N + j]) + v;
                                     d_sum[i * N + j] = static_cast<T>(v);
                                   });
}

#define ZAE_ADD_LAYER_NORM(T)                                                                                     \
  template void add_layer_norm_forward<T>(const T*, const T*, const T*, const T*, T*, T*, acc_t<T>*, acc_t<T>*,  \
                                          int64_t, int64_t, double);                                             \
  template void add_layer_norm_backward<T>(const T*, const T*, const T*, const acc_t<T>*, const acc_t<T>*,       \
                                           const T*, T*, T*, T*, int64_t, int64_t);
ZAE_ADD_LAYER_NORM(float)
ZAE_ADD_LAYER_NORM(double)
ZAE_ADD_LAYER_NORM(Half)
ZAE_ADD_LAYER_NORM(BFloat16)
#undef ZAE_ADD_LAYER_NORM

}  // namespace zae::kernels::cpu
