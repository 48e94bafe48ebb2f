#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace zae::kernels::cpu {

namespace {

// Sum of the class weights (C when unweighted), in A.
template <class T, class A = acc_t<T>>
A weight_total(const T* weight, int64_t classes) {
  if (weight == nullptr) return static_cast<A>(classes);
  A total = 0;
  for (int64_t c = 0; c < classes; ++c) total += static_cast<A>(weight[c]);
  return total;
}

// logsumexp of one row x (C) in A; a row whose max is infinite is not shifted.
template <class T, class A = acc_t<T>>
A row_logsumexp(const T* x, int64_t classes) {
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < classes; ++c) m = std::max(m, static_cast<A>(x[c]));
  const A shift = std::isfinite(m) ? m : A(0);
  A s = 0;
  for (int64_t c = 0; c < classes; ++c) s += std::exp(static_cast<A>(x[c]) - shift);
  return shift + std::log(s);
}

}  // namespace

template <class T, class I>
CrossEntropySums cross_entropy_forward(const T* logits, const I* target, const T* weight, const CrossEntropyParams& p,
                                       acc_t<T>* lse, T* loss) {
  using A = acc_t<T>;
  const int64_t rows = p.rows, classes = p.classes;
  const A eps = static_cast<A>(p.label_smoothing);
  const A smooth_coef = classes > 0 ? eps / static_cast<A>(classes) : A(0);
  std::vector<double> row_loss(static_cast<size_t>(rows)), row_weight(static_cast<size_t>(rows));
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(classes, 1));
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* x = logits + r * classes;  // (C)
      const A l = row_logsumexp(x, classes);
      lse[r] = l;
      const int64_t t = static_cast<int64_t>(target[r]);
      A value = 0, wt = 0;
      if (t != p.ignore_index) {
        wt = weight != nullptr ? static_cast<A>(weight[t]) : A(1);
        value = (A(1) - eps) * wt * (l - static_cast<A>(x[t]));
        if (eps != A(0)) {
          A smooth = 0;
          for (int64_t c = 0; c < classes; ++c) {
            const A wc = weight != nullptr ? static_cast<A>(weight[c]) : A(1);
            smooth += wc * (l - static_cast<A>(x[c]));
          }
          value += smooth_coef * smooth;
        }
      }
      row_loss[r] = static_cast<double>(value);
      row_weight[r] = static_cast<double>(wt);
      if (loss != nullptr) loss[r] = T(value);
    }
  });
  CrossEntropySums sums;
  for (int64_t r = 0; r < rows; ++r) {
    sums.loss += row_loss[r];
    sums.weight += row_weight[r];
  }
  return sums;
}

template <class T, class I>
void cross_entropy_backward(const T* logits, const I* target, const T* weight, const acc_t<T>* lse, const T* grad,
                            int64_t grad_stride, double scale, const CrossEntropyParams& p, T* d_logits) {
  using A = acc_t<T>;
  const int64_t rows = p.rows, classes = p.classes;
  const A eps = static_cast<A>(p.label_smoothing);
  const A smooth_coef = classes > 0 ? eps / static_cast<A>(classes) : A(0);
  const A total = weight_total(weight, classes);
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(classes, 1));
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* x = logits + r * classes;  // (C)
      T* d = d_logits + r * classes;      // (C)
      const int64_t t = static_cast<int64_t>(target[r]);
      if (t == p.ignore_index) {
        std::fill(d, d + classes, T(0.0f));
        continue;
      }
      const A g = static_cast<A>(static_cast<double>(grad[r * grad_stride]) * scale);
      const A wt = weight != nullptr ? static_cast<A>(weight[t]) : A(1);
      const A target_coef = (A(1) - eps) * wt;
      const A p_coef = target_coef + smooth_coef * total;  // weight of p_j
      const A l = lse[r];
      for (int64_t j = 0; j < classes; ++j) {
        const A wj = weight != nullptr ? static_cast<A>(weight[j]) : A(1);
        A v = std::exp(static_cast<A>(x[j]) - l) * p_coef - smooth_coef * wj;
        if (j == t) v -= target_coef;
        d[j] = T(g * v);
      }
    }
  });
}

#define ZAE_CE(T, I)                                                                                                   \
  template CrossEntropySums cross_entropy_forward<T, I>(const T*, const I*, const T*, const CrossEntropyParams&,       \
                                                        acc_t<T>*, T*);                                                \
  template void cross_entropy_backward<T, I>(const T*, const I*, const T*, const acc_t<T>*, const T*, int64_t, double, \
                                             const CrossEntropyParams&, T*);
#define ZAE_CE_T(T)  \
  ZAE_CE(T, int32_t) \
  ZAE_CE(T, int64_t)
ZAE_CE_T(float)
ZAE_CE_T(double)
ZAE_CE_T(Half)
ZAE_CE_T(BFloat16)
#undef ZAE_CE_T
#undef ZAE_CE

}  // namespace zae::kernels::cpu
