// CPU group_norm forward and backward (contract in group_norm.h).
// Forward: the N * G groups in parallel, two passes for the statistics and one for the
// write. Backward: one parallel pass over the N * C rows of S elements computes
// per-row sums of g and g * (x - mean) (double); the dx pass combines them per group
// in channel order, and dweight/dbias add them over n per channel in order.
#include "kernels/cpu/group_norm.h"

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

}  // namespace

template <class T>
void group_norm_forward(const T* x, const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t N,
                        int64_t C, int64_t S, int64_t G, double eps) {
  using Acc = acc_t<T>;
  const int64_t K = C / G, D = K * S;
  parallel_for(N * G, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t ng = b; ng < e; ++ng) {
      const T* xg = x + ng * D;  // (K, S)
      T* yg = y + ng * D;        // (K, S)
      const double s = lane_sum(xg, xg, D, [](T v, T) { return static_cast<double>(v); });
      const double mu = D > 0 ? s / static_cast<double>(D) : 0.0;
      const double ss = lane_sum(xg, xg, D, [mu](T v, T) {
        const double d = static_cast<double>(v) - mu;
        return d * d;
      });
      const double var = D > 0 ? ss / static_cast<double>(D) : 0.0;
      mean[ng] = static_cast<Acc>(mu);
      rstd[ng] = static_cast<Acc>(1.0 / std::sqrt(var + eps));
      const Acc m = mean[ng], r = rstd[ng];
      const int64_t c0 = (ng % G) * K;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = c0 + k;
        const Acc alpha = weight ? r * static_cast<Acc>(weight[c]) : r;
        const Acc beta = bias ? static_cast<Acc>(bias[c]) : Acc(0);
        const T* xr = xg + k * S;  // (S)
        T* yr = yg + k * S;        // (S)
        for (int64_t i = 0; i < S; ++i) yr[i] = static_cast<T>((static_cast<Acc>(xr[i]) - m) * alpha + beta);
      }
    }
  });
}

template <class T>
void group_norm_backward(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight, T* dx,
                         T* dweight, T* dbias, int64_t N, int64_t C, int64_t S, int64_t G) {
  using Acc = acc_t<T>;
  const int64_t K = C / G, D = K * S;
  // Per-row sums over s: sum(g) and sum(g * (x - mean)).
  std::vector<double> row_g(static_cast<size_t>(N * C)), row_gx(static_cast<size_t>(N * C));  // (N, C)
  parallel_for(N * C, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(S, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t ng = (r / C) * G + (r % C) / K;
      const double mu = static_cast<double>(mean[ng]);
      const T* gr = g + r * S;  // (S)
      const T* xr = x + r * S;  // (S)
      row_g[r] = lane_sum(gr, gr, S, [](T gv, T) { return static_cast<double>(gv); });
      row_gx[r] =
          lane_sum(gr, xr, S, [mu](T gv, T xv) { return static_cast<double>(gv) * (static_cast<double>(xv) - mu); });
    }
  });

  if (dx && D > 0) {
    const double inv_d = 1.0 / static_cast<double>(D);
    parallel_for(N * G, std::max<int64_t>(1, kDefaultGrain / D), [&](int64_t b, int64_t e) {
      for (int64_t ng = b; ng < e; ++ng) {
        const int64_t n = ng / G, c0 = (ng % G) * K;
        const double r = static_cast<double>(rstd[ng]);
        double sum_gw = 0.0, sum_gwx = 0.0;  // sum(g * w), sum(g * w * (x - mean))
        for (int64_t k = 0; k < K; ++k) {
          const double w = weight ? static_cast<double>(weight[c0 + k]) : 1.0;
          sum_gw += w * row_g[n * C + c0 + k];
          sum_gwx += w * row_gx[n * C + c0 + k];
        }
        const Acc a = static_cast<Acc>(sum_gw * inv_d);              // mean_D(gw)
        const Acc proj = static_cast<Acc>(sum_gwx * inv_d * r * r);  // mean_D(gw * xhat) * rstd
        const Acc m = mean[ng], ra = rstd[ng];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t c = c0 + k;
          const Acc w = weight ? static_cast<Acc>(weight[c]) : Acc(1);
          const int64_t off = (n * C + c) * S;
          const T* gr = g + off;  // (S)
          const T* xr = x + off;  // (S)
          T* dr = dx + off;       // (S)
          for (int64_t i = 0; i < S; ++i)
            dr[i] = static_cast<T>(ra * (static_cast<Acc>(gr[i]) * w - a - (static_cast<Acc>(xr[i]) - m) * proj));
        }
      }
    });
  }

  if (!dweight && !dbias) return;
  parallel_for(C, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(N, 1)), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double sw = 0.0, sb = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        sw += row_gx[n * C + c] * static_cast<double>(rstd[n * G + c / K]);
        sb += row_g[n * C + c];
      }
      if (dweight) dweight[c] = static_cast<T>(sw);
      if (dbias) dbias[c] = static_cast<T>(sb);
    }
  });
}

#define ZAE_GROUP_NORM(T)                                                                                          \
  template void group_norm_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, acc_t<T>*, int64_t, int64_t,    \
                                      int64_t, int64_t, double);                                                   \
  template void group_norm_backward<T>(const T*, const T*, const acc_t<T>*, const acc_t<T>*, const T*, T*, T*, T*, \
                                       int64_t, int64_t, int64_t, int64_t);
ZAE_GROUP_NORM(float)
ZAE_GROUP_NORM(double)
ZAE_GROUP_NORM(Half)
ZAE_GROUP_NORM(BFloat16)
#undef ZAE_GROUP_NORM

}  // namespace zae::kernels::cpu
