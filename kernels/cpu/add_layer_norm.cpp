// CPU add_layer_norm forward and backward (contract in add_layer_norm.h).
// Forward: rows in parallel; the first pass adds, writes sum and accumulates its row sum,
// the variance and output passes read the row of sum back from cache.
// Backward: rows are grouped into chunks whose size depends only on (M, N); each chunk
// writes its rows of d_sum and its partial column sums for dweight / dbias in the same
// sweep, and the partials are then added in chunk order (thread-count independent).
#include "kernels/cpu/add_layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace zae::kernels::cpu {

template <class T>
void add_layer_norm_forward(const T* x, const T* residual, const T* weight, const T* bias, T* sum, T* y,
                            acc_t<T>* mean, acc_t<T>* rstd, int64_t M, int64_t N, double eps) {
  using Acc = acc_t<T>;
  if (M == 0) return;
  const Acc inv_n = Acc(1) / static_cast<Acc>(N);
  const Acc eps_acc = static_cast<Acc>(eps);
  parallel_for(M, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(N, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* xr = x + i * N;         // (N)
      const T* rr = residual + i * N;  // (N)
      T* sr = sum + i * N;             // (N)
      T* yr = y + i * N;               // (N)
      Acc s = 0;
      for (int64_t j = 0; j < N; ++j) {
        const T v = static_cast<T>(static_cast<Acc>(xr[j]) + static_cast<Acc>(rr[j]));
        sr[j] = v;
        s += static_cast<Acc>(v);
      }
      const Acc mu = s * inv_n;
      Acc ss = 0;
      for (int64_t j = 0; j < N; ++j) {
        const Acc d = static_cast<Acc>(sr[j]) - mu;
        ss += d * d;
      }
      const Acc r = Acc(1) / std::sqrt(ss * inv_n + eps_acc);
      mean[i] = mu;
      rstd[i] = r;
      for (int64_t j = 0; j < N; ++j) {
        Acc v = (static_cast<Acc>(sr[j]) - mu) * r;
        if (weight) v *= static_cast<Acc>(weight[j]);
        if (bias) v += static_cast<Acc>(bias[j]);
        yr[j] = static_cast<T>(v);
      }
    }
  });
}

template <class T>
void add_layer_norm_backward(const T* g_out, const T* g_sum, const T* sum, const acc_t<T>* mean,
                             const acc_t<T>* rstd, const T* weight, T* d_sum, T* dweight, T* dbias, int64_t M,
                             int64_t N) {
  using Acc = acc_t<T>;
  const bool need_wb = dweight != nullptr || dbias != nullptr;
  if (N == 0) return;
  if (M == 0) {
    if (dweight) std::fill(dweight, dweight + N, T(0.0f));
    if (dbias) std::fill(dbias, dbias + N, T(0.0f));
    return;
  }
  const Acc inv_n = Acc(1) / static_cast<Acc>(N);
  const int64_t rows_per_chunk = std::max<int64_t>(64, (kDefaultGrain + N - 1) / N);
  const int64_t chunks = (M + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<Acc> partial(need_wb ? static_cast<size_t>(chunks * 2 * N) : 0);  // (chunks, 2, N)

  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      Acc* pw = need_wb ? partial.data() + c * 2 * N : nullptr;  // (N) partial dweight
      Acc* pb = need_wb ? pw + N : nullptr;                      // (N) partial dbias
      if (need_wb) std::fill(pw, pw + 2 * N, Acc(0));
      const int64_t r0 = c * rows_per_chunk, r1 = std::min(M, r0 + rows_per_chunk);
      for (int64_t i = r0; i < r1; ++i) {
        const T* gr = g_out + i * N;  // (N)
        const T* sr = sum + i * N;    // (N)
        const Acc mu = mean[i], r = rstd[i];
        if (d_sum) {
          Acc sum_gw = 0, sum_gw_xhat = 0;
          for (int64_t j = 0; j < N; ++j) {
            const Acc xhat = (static_cast<Acc>(sr[j]) - mu) * r;
            const Acc gw = weight ? static_cast<Acc>(gr[j]) * static_cast<Acc>(weight[j]) : static_cast<Acc>(gr[j]);
            sum_gw += gw;
            sum_gw_xhat += gw * xhat;
          }
          const Acc a = sum_gw * inv_n, bb = sum_gw_xhat * inv_n;
          const T* gs = g_sum ? g_sum + i * N : nullptr;  // (N)
          T* dr = d_sum + i * N;                          // (N)
          for (int64_t j = 0; j < N; ++j) {
            const Acc xhat = (static_cast<Acc>(sr[j]) - mu) * r;
            const Acc gw = weight ? static_cast<Acc>(gr[j]) * static_cast<Acc>(weight[j]) : static_cast<Acc>(gr[j]);
            Acc v = r * (gw - a - xhat * bb);
            if (gs) v = static_cast<Acc>(gs[j]) + v;
            dr[j] = static_cast<T>(v);
          }
        }
        if (need_wb) {
          for (int64_t j = 0; j < N; ++j) {
            const Acc gj = static_cast<Acc>(gr[j]);
            pw[j] += gj * (static_cast<Acc>(sr[j]) - mu) * r;
            pb[j] += gj;
          }
        }
      }
    }
  });

  if (!need_wb) return;
  parallel_for(N, std::max<int64_t>(1, kDefaultGrain / chunks), [&](int64_t jb, int64_t je) {
    for (int64_t j = jb; j < je; ++j) {
      Acc sw = 0, sb = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        sw += partial[c * 2 * N + j];
        sb += partial[c * 2 * N + N + j];
      }
      if (dweight) dweight[j] = static_cast<T>(sw);
      if (dbias) dbias[j] = static_cast<T>(sb);
    }
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
