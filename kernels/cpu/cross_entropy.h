// Fused softmax cross-entropy over rows of logits (CPU), as
// torch.nn.functional.cross_entropy with class indices, class weights w
// (all 1 when absent, W = sum_c w_c) and label smoothing eps. Per row r with
// target t != ignore_index:
//   lse_r  = logsumexp_c x[r, c]
//   loss_r = (1 - eps) * w_t * (lse_r - x[r, t]) + eps / C * sum_c w_c * (lse_r - x[r, c])
//   d x[r, j] = g_r * (p_j * ((1 - eps) * w_t + eps / C * W) - (1 - eps) * w_t * [j == t] - eps / C * w_j),
//   p_j = exp(x[r, j] - lse_r); ignored rows have loss 0 and gradient 0.
// Invariants: targets are validated (in [0, C) or ignore_index) before these run;
// no probabilities are materialised: backward recomputes p from logits and lse.
// Sums over rows are taken in double in row order (same bits for any thread count).
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

struct CrossEntropyParams {
  int64_t rows = 0;     // M
  int64_t classes = 0;  // C
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

struct CrossEntropySums {
  double loss = 0.0;    // sum_r loss_r
  double weight = 0.0;  // sum of w_t over non-ignored rows (the mean's divisor)
};

/// logits (M, C), target (M), weight (C) or null; writes lse (M) and, when non-null,
/// loss (M). Returns the row sums.
template <class T, class I>
CrossEntropySums cross_entropy_forward(const T* logits, const I* target, const T* weight, const CrossEntropyParams& p,
                                       acc_t<T>* lse, T* loss);

/// d_logits (M, C) from logits (M, C), target (M), weight (C) or null, lse (M);
/// g_r = grad[r * grad_stride] * scale (grad_stride 0: one scalar for all rows).
template <class T, class I>
void cross_entropy_backward(const T* logits, const I* target, const T* weight, const acc_t<T>* lse, const T* grad,
                            int64_t grad_stride, double scale, const CrossEntropyParams& p, T* d_logits);

}  // namespace zae::kernels::cpu
