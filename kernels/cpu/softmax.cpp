// CPU softmax / log_softmax forward and backward (contract in softmax.h).
// Rows (inner == 1): three passes per row (max, sum of exp, write). Otherwise the
// (K, inner) block of each outer index is walked in chunks of kLanes lanes so every
// read runs contiguously along inner, with per-lane accumulators on the stack.
#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/parallel.h"

namespace zae::kernels::cpu {

namespace {

constexpr int64_t kLanes = 64;  // inner lanes handled together in the strided path

// Rows per task so that one task touches about kDefaultGrain elements.
int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(work_per_item, 1));
}

template <class T>
void forward_rows(const T* x, T* y, int64_t rows, int64_t K, bool log) {
  using Acc = acc_t<T>;
  constexpr bool kStoreExp = std::is_same_v<T, Acc>;  // 16-bit: recompute rather than round twice
  parallel_for(rows, grain_for(K), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * K;  // (K)
      T* yr = y + r * K;        // (K)
      Acc mx = -std::numeric_limits<Acc>::infinity();
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, static_cast<Acc>(xr[k]));
      Acc sum = 0;
      if (kStoreExp && !log) {
        for (int64_t k = 0; k < K; ++k) {
          Acc v = std::exp(static_cast<Acc>(xr[k]) - mx);
          yr[k] = static_cast<T>(v);
          sum += v;
        }
      } else {
        for (int64_t k = 0; k < K; ++k) sum += std::exp(static_cast<Acc>(xr[k]) - mx);
      }
      if (log) {
        const Acc log_sum = std::log(sum);
        for (int64_t k = 0; k < K; ++k) yr[k] = static_cast<T>(static_cast<Acc>(xr[k]) - mx - log_sum);
      } else if (kStoreExp) {
        const Acc inv = Acc(1) / sum;
        for (int64_t k = 0; k < K; ++k) yr[k] = static_cast<T>(static_cast<Acc>(yr[k]) * inv);
      } else {
        const Acc inv = Acc(1) / sum;
        for (int64_t k = 0; k < K; ++k) yr[k] = static_cast<T>(std::exp(static_cast<Acc>(xr[k]) - mx) * inv);
      }
    }
  });
}

template <class T>
void forward_strided(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, bool log) {
  using Acc = acc_t<T>;
  constexpr bool kStoreExp = std::is_same_v<T, Acc>;  // 16-bit: recompute rather than round twice
  const int64_t chunks = (inner + kLanes - 1) / kLanes;
  parallel_for(outer * chunks, grain_for(K * kLanes), [&](int64_t b, int64_t e) {
    Acc mx[kLanes], sum[kLanes];
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / chunks, i0 = (task % chunks) * kLanes;
      const int64_t w = std::min(kLanes, inner - i0);
      const T* xb = x + o * K * inner + i0;  // (K, inner) block, lanes [i0, i0 + w)
      T* yb = y + o * K * inner + i0;
      std::fill(mx, mx + w, -std::numeric_limits<Acc>::infinity());
      std::fill(sum, sum + w, Acc(0));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < w; ++i) mx[i] = std::max(mx[i], static_cast<Acc>(xb[k * inner + i]));
      if (kStoreExp && !log) {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i) {
            const Acc v = std::exp(static_cast<Acc>(xb[k * inner + i]) - mx[i]);
            yb[k * inner + i] = static_cast<T>(v);
            sum[i] += v;
          }
      } else {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i) sum[i] += std::exp(static_cast<Acc>(xb[k * inner + i]) - mx[i]);
      }
      if (log) {
        for (int64_t i = 0; i < w; ++i) sum[i] = mx[i] + std::log(sum[i]);  // log-sum-exp per lane
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i)
            yb[k * inner + i] = static_cast<T>(static_cast<Acc>(xb[k * inner + i]) - sum[i]);
      } else if (kStoreExp) {
        for (int64_t i = 0; i < w; ++i) sum[i] = Acc(1) / sum[i];
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i)
            yb[k * inner + i] = static_cast<T>(static_cast<Acc>(yb[k * inner + i]) * sum[i]);
      } else {
        for (int64_t i = 0; i < w; ++i) sum[i] = Acc(1) / sum[i];
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i)
            yb[k * inner + i] = static_cast<T>(std::exp(static_cast<Acc>(xb[k * inner + i]) - mx[i]) * sum[i]);
      }
    }
  });
}

template <class T>
void backward_rows(const T* g, const T* y, T* dx, int64_t rows, int64_t K, bool log) {
  using Acc = acc_t<T>;
  parallel_for(rows, grain_for(K), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* gr = g + r * K;  // (K)
      const T* yr = y + r * K;  // (K)
      T* dr = dx + r * K;       // (K)
      Acc s = 0;
      if (log) {
        for (int64_t k = 0; k < K; ++k) s += static_cast<Acc>(gr[k]);
        for (int64_t k = 0; k < K; ++k)
          dr[k] = static_cast<T>(static_cast<Acc>(gr[k]) - std::exp(static_cast<Acc>(yr[k])) * s);
      } else {
        for (int64_t k = 0; k < K; ++k) s += static_cast<Acc>(gr[k]) * static_cast<Acc>(yr[k]);
        for (int64_t k = 0; k < K; ++k)
          dr[k] = static_cast<T>(static_cast<Acc>(yr[k]) * (static_cast<Acc>(gr[k]) - s));
      }
    }
  });
}

template <class T>
void backward_strided(const T* g, const T* y, T* dx, int64_t outer, int64_t K, int64_t inner, bool log) {
  using Acc = acc_t<T>;
  const int64_t chunks = (inner + kLanes - 1) / kLanes;
  parallel_for(outer * chunks, grain_for(K * kLanes), [&](int64_t b, int64_t e) {
    Acc s[kLanes];
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / chunks, i0 = (task % chunks) * kLanes;
      const int64_t w = std::min(kLanes, inner - i0);
      const int64_t base = o * K * inner + i0;  // (K, inner) block, lanes [i0, i0 + w)
      const T* gb = g + base;
      const T* yb = y + base;
      T* db = dx + base;
      std::fill(s, s + w, Acc(0));
      if (log) {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i) s[i] += static_cast<Acc>(gb[k * inner + i]);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i) {
            const int64_t j = k * inner + i;
            db[j] = static_cast<T>(static_cast<Acc>(gb[j]) - std::exp(static_cast<Acc>(yb[j])) * s[i]);
          }
      } else {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i)
            s[i] += static_cast<Acc>(gb[k * inner + i]) * static_cast<Acc>(yb[k * inner + i]);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < w; ++i) {
            const int64_t j = k * inner + i;
            db[j] = static_cast<T>(static_cast<Acc>(yb[j]) * (static_cast<Acc>(gb[j]) - s[i]));
          }
      }
    }
  });
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, bool log) {
  if (outer == 0 || K == 0 || inner == 0) return;
  if (inner == 1)
    forward_rows(x, y, outer, K, log);
  else
    forward_strided(x, y, outer, K, inner, log);
}

template <class T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t outer, int64_t K, int64_t inner, bool log) {
  if (outer == 0 || K == 0 || inner == 0) return;
  if (inner == 1)
    backward_rows(g, y, dx, outer, K, log);
  else
    backward_strided(g, y, dx, outer, K, inner, log);
}

#define ZAE_SOFTMAX(T)                                                                            \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool);               \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);
ZAE_SOFTMAX(float)
ZAE_SOFTMAX(double)
ZAE_SOFTMAX(Half)
ZAE_SOFTMAX(BFloat16)
#undef ZAE_SOFTMAX

}  // namespace zae::kernels::cpu
