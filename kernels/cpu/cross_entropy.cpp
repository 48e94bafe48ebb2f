// CPU cross-entropy (contract in cross_entropy.h). The per-logit exp is vec::exp_of
// (kernels/cpu/vec_math.h: branch-free, vectorized for float, <= 1 ulp); the row max and
// the row sum of exps run over kLanes interleaved partial results combined in a fixed
// order, so they vectorize and the result does not depend on -march.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

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

constexpr int64_t kLanes = 16;  // partial maxima / sums per row (one AVX-512 register of floats)

// logsumexp of one row x (C) in A; a row whose max is infinite is not shifted. NaN logits
// are skipped by the max and make the sum NaN.
template <class T, class A = acc_t<T>>
A row_logsumexp(const T* x, int64_t classes) {
  const int64_t body = classes - classes % kLanes;
  std::array<A, kLanes> lane;
  lane.fill(-std::numeric_limits<A>::infinity());
  for (int64_t c = 0; c < body; c += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = std::max(lane[l], static_cast<A>(x[c + l]));
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t l = 0; l < kLanes; ++l) m = std::max(m, lane[l]);
  for (int64_t c = body; c < classes; ++c) m = std::max(m, static_cast<A>(x[c]));
  const A shift = std::isfinite(m) ? m : A(0);
  lane.fill(A(0));
  for (int64_t c = 0; c < body; c += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] += vec::exp_of(static_cast<A>(x[c + l]) - shift);
  A s = 0;
  for (int64_t l = 0; l < kLanes; ++l) s += lane[l];
  for (int64_t c = body; c < classes; ++c) s += vec::exp_of(static_cast<A>(x[c]) - shift);
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
      // d_j = g (p_j p_coef - smooth_coef w_j - [j == t] target_coef), p_j = exp(x_j - l);
      // the loops carry no branch (they vectorize), the target's entry is fixed after.
      if (weight != nullptr) {
        for (int64_t j = 0; j < classes; ++j)
          d[j] = T(g * (vec::exp_of(static_cast<A>(x[j]) - l) * p_coef - smooth_coef * static_cast<A>(weight[j])));
      } else {
        for (int64_t j = 0; j < classes; ++j)
          d[j] = T(g * (vec::exp_of(static_cast<A>(x[j]) - l) * p_coef - smooth_coef));
      }
      const A wt_smooth = weight != nullptr ? static_cast<A>(weight[t]) : A(1);
      d[t] = T(g * (vec::exp_of(static_cast<A>(x[t]) - l) * p_coef - smooth_coef * wt_smooth - target_coef));
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
