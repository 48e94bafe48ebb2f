// CPU batch_norm forward and backward (contract in batch_norm.h).
// Per-channel reductions run over blocks of channels in parallel; inside a block the
// loop is n outer, channel, then s inner (in 8 lanes), so each channel's sum has a fixed order and
// (N, C) inputs (S = 1) read memory row by row, vectorised across channels. The
// elementwise passes use per-channel coefficients computed once: over the N * C rows
// of S elements in parallel, or over the N rows of C channels when S = 1.
#include "kernels/cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace zae::kernels::cpu {

namespace {

// sum_{i < n} f(a[i], b[i]) in double, over 8 independent lanes combined in a fixed
// order: vectorisable, and the same bits for any thread count.
template <class T, class F>
double lane_sum(const T* a, const T* b, int64_t n, F&& f) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += f(a[i + j], b[i + j]);
  double tail = 0.0;
  for (; i < n; ++i) tail += f(a[i], b[i]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])) + tail;
}

// Calls fn(cb, ce) over blocks of channels sized so each block covers about a grain of elements.
template <class Fn>
void for_channel_blocks(int64_t N, int64_t C, int64_t S, Fn&& fn) {
  const int64_t per_channel = std::max<int64_t>(1, N * S);
  parallel_for(C, std::max<int64_t>(1, kDefaultGrain / per_channel), fn);
}

// acc[c - cb] += sum over n (outer) and s (inner) of f(a[n, c, s], b[n, c, s], c), for c in [cb, ce).
template <class T, class F>
void channel_sums(const T* a, const T* b, int64_t N, int64_t C, int64_t S, int64_t cb, int64_t ce, double* acc, F&& f) {
  if (S == 1) {
    for (int64_t n = 0; n < N; ++n) {
      const T* ar = a + n * C;  // (C)
      const T* br = b + n * C;  // (C)
      for (int64_t c = cb; c < ce; ++c) acc[c - cb] += f(ar[c], br[c], c);
    }
    return;
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = cb; c < ce; ++c) {
      const T* ar = a + (n * C + c) * S;  // (S)
      const T* br = b + (n * C + c) * S;  // (S)
      acc[c - cb] += lane_sum(ar, br, S, [&f, c](T u, T v) { return f(u, v, c); });
    }
}

// out[n, c, s] = f(a[n, c, s], b[n, c, s], c) over all elements, in parallel.
template <class T, class F>
void channel_map(const T* a, const T* b, T* out, int64_t N, int64_t C, int64_t S, F&& f) {
  if (S == 1) {
    parallel_for(N, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(C, 1)), [&](int64_t nb, int64_t ne) {
      for (int64_t n = nb; n < ne; ++n) {
        const T* ar = a + n * C;  // (C)
        const T* br = b + n * C;  // (C)
        T* orow = out + n * C;    // (C)
        for (int64_t c = 0; c < C; ++c) orow[c] = f(ar[c], br[c], c);
      }
    });
    return;
  }
  parallel_for(N * C, std::max<int64_t>(1, kDefaultGrain / S), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t c = r % C;
      const T* ar = a + r * S;  // (S)
      const T* br = b + r * S;  // (S)
      T* orow = out + r * S;    // (S)
      for (int64_t i = 0; i < S; ++i) orow[i] = f(ar[i], br[i], c);
    }
  });
}

}  // namespace

template <class T>
void batch_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* var, acc_t<T>* rstd,
                        bool compute_stats, int64_t N, int64_t C, int64_t S, double eps) {
  using Acc = acc_t<T>;
  const int64_t M = N * S;
  if (compute_stats) {
    for_channel_blocks(N, C, S, [&](int64_t cb, int64_t ce) {
      std::vector<double> sum(static_cast<size_t>(ce - cb), 0.0), mu(sum.size()), sq(sum.size(), 0.0);
      channel_sums(x, x, N, C, S, cb, ce, sum.data(), [](T v, T, int64_t) { return static_cast<double>(v); });
      for (size_t i = 0; i < sum.size(); ++i) mu[i] = M > 0 ? sum[i] / static_cast<double>(M) : 0.0;
      const double* m = mu.data() - cb;  // indexed by channel
      channel_sums(x, x, N, C, S, cb, ce, sq.data(), [m](T v, T, int64_t c) {
        const double d = static_cast<double>(v) - m[c];
        return d * d;
      });
      for (int64_t c = cb; c < ce; ++c) {
        const double v = M > 0 ? sq[c - cb] / static_cast<double>(M) : 0.0;
        mean[c] = static_cast<Acc>(mu[c - cb]);
        var[c] = static_cast<Acc>(v);
        rstd[c] = static_cast<Acc>(1.0 / std::sqrt(v + eps));
      }
    });
  } else {
    for (int64_t c = 0; c < C; ++c) rstd[c] = static_cast<Acc>(1.0 / std::sqrt(static_cast<double>(var[c]) + eps));
  }
  if (M == 0) return;
  std::vector<Acc> alpha(static_cast<size_t>(C)), beta(static_cast<size_t>(C));  // (C) y = (x - mean) * alpha + beta
  for (int64_t c = 0; c < C; ++c) {
    alpha[c] = weight ? rstd[c] * static_cast<Acc>(weight[c]) : rstd[c];
    beta[c] = bias ? static_cast<Acc>(bias[c]) : Acc(0);
  }
  const Acc* m = mean;
  const Acc* a = alpha.data();
  const Acc* b = beta.data();
  channel_map(x, x, y, N, C, S,
              [m, a, b](T v, T, int64_t c) { return static_cast<T>((static_cast<Acc>(v) - m[c]) * a[c] + b[c]); });
}

template <class T>
void batch_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, bool batch_stats, int64_t N, int64_t C, int64_t S) {
  using Acc = acc_t<T>;
  const int64_t M = N * S;
  const bool need_sums = dweight != nullptr || dbias != nullptr || (dx != nullptr && batch_stats);
  std::vector<double> sum_g(need_sums ? static_cast<size_t>(C) : 0, 0.0);     // (C) sum(g)
  std::vector<double> sum_gxmu(need_sums ? static_cast<size_t>(C) : 0, 0.0);  // (C) sum(g * (x - mean))
  if (need_sums) {
    for_channel_blocks(N, C, S, [&](int64_t cb, int64_t ce) {
      channel_sums(g, g, N, C, S, cb, ce, sum_g.data() + cb, [](T gv, T, int64_t) { return static_cast<double>(gv); });
      channel_sums(g, x, N, C, S, cb, ce, sum_gxmu.data() + cb, [mean](T gv, T xv, int64_t c) {
        return static_cast<double>(gv) * (static_cast<double>(xv) - static_cast<double>(mean[c]));
      });
      for (int64_t c = cb; c < ce; ++c) {
        if (dweight) dweight[c] = static_cast<T>(sum_gxmu[c] * static_cast<double>(rstd[c]));
        if (dbias) dbias[c] = static_cast<T>(sum_g[c]);
      }
    });
  }
  if (!dx || M == 0) return;
  // dx = k * (g - g_mean - (x - mean) * proj), k = weight * rstd, proj = rstd^2 * sum(g * (x - mean)) / M.
  const double inv_m = 1.0 / static_cast<double>(M);
  std::vector<Acc> k(static_cast<size_t>(C)), g_mean(static_cast<size_t>(C), Acc(0)), proj(k.size(), Acc(0));  // (C)
  for (int64_t c = 0; c < C; ++c) {
    k[c] = weight ? rstd[c] * static_cast<Acc>(weight[c]) : rstd[c];
    if (!batch_stats) continue;
    const double r = static_cast<double>(rstd[c]);
    g_mean[c] = static_cast<Acc>(sum_g[c] * inv_m);
    proj[c] = static_cast<Acc>(sum_gxmu[c] * inv_m * r * r);
  }
  const Acc* kp = k.data();
  if (!batch_stats) {
    channel_map(g, g, dx, N, C, S, [kp](T gv, T, int64_t c) { return static_cast<T>(kp[c] * static_cast<Acc>(gv)); });
    return;
  }
  const Acc* gm = g_mean.data();
  const Acc* pj = proj.data();
  channel_map(g, x, dx, N, C, S, [kp, gm, pj, mean](T gv, T xv, int64_t c) {
    return static_cast<T>(kp[c] * (static_cast<Acc>(gv) - gm[c] - (static_cast<Acc>(xv) - mean[c]) * pj[c]));
  });
}

#define ZAE_BATCH_NORM(T)                                                                                          \
  template void batch_norm_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, acc_t<T>*, acc_t<T>*, bool,     \
                                      int64_t, int64_t, int64_t, double);                                          \
  template void batch_norm_backward<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*, T*, T*, \
                                       bool, int64_t, int64_t, int64_t);
ZAE_BATCH_NORM(float)
ZAE_BATCH_NORM(double)
ZAE_BATCH_NORM(Half)
ZAE_BATCH_NORM(BFloat16)
#undef ZAE_BATCH_NORM

}  // namespace zae::kernels::cpu
