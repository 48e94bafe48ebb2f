// Row sweeps shared by the CPU layer_norm and add_layer_norm (internal: included only by
// kernels/cpu/layer_norm.cpp and kernels/cpu/add_layer_norm.cpp); each op supplies only
// what differs: the forward's first pass over a row, the backward's store of dx.
// Invariants: the math is layer_norm.h's contract (two-pass statistics in acc_t, biased
// variance, eps inside the square root). The forward runs rows in parallel with a grain
// of about kDefaultGrain elements. The backward groups rows into chunks whose size
// depends only on (M, N); each chunk writes its rows of the input gradient and its partial
// column sums for dweight / dbias in one sweep, and the partials are then added in chunk
// order, so results do not depend on how many threads ran.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu::detail {

/// layer_norm forward over M rows of N, rows in parallel. first_pass(i) reads or builds
/// row i and returns {the row to normalise (N), its element sum in acc_t}; the row is
/// then normalised in two more passes (variance, write) into y (M, N) with the row's
/// mean and rstd. weight / bias may be null (identity affine).
template <class T, class FirstPass>
void layer_norm_forward_rows(const T* weight, const T* bias, T* y, acc_t<T>* mean, acc_t<T>* rstd, int64_t M,
                             int64_t N, double eps, FirstPass&& first_pass) {
  using Acc = acc_t<T>;
  if (M == 0) return;
  const Acc inv_n = Acc(1) / static_cast<Acc>(N);
  const Acc eps_acc = static_cast<Acc>(eps);
  parallel_for(M, std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(N, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const auto [xr, s] = first_pass(i);  // (N), sum of xr
      const Acc mu = s * inv_n;
      Acc ss = 0;
      for (int64_t j = 0; j < N; ++j) {
        const Acc d = static_cast<Acc>(xr[j]) - mu;
        ss += d * d;
      }
      const Acc r = Acc(1) / std::sqrt(ss * inv_n + eps_acc);
      mean[i] = mu;
      rstd[i] = r;
      T* yr = y + i * N;  // (N)
      for (int64_t j = 0; j < N; ++j) {
        Acc v = (static_cast<Acc>(xr[j]) - mu) * r;
        if (weight) v *= static_cast<Acc>(weight[j]);
        if (bias) v += static_cast<Acc>(bias[j]);
        yr[j] = static_cast<T>(v);
      }
    }
  });
}

/// layer_norm backward over M dense rows of x (N) given the upstream g and the saved
/// mean / rstd. When want_dx, calls store_dx(i, j, v) with the input gradient v (in acc_t)
/// of element (i, j), once per element; the caller rounds and stores it. dweight / dbias
/// (N) may be null; weight may be null (identity).
template <class T, class StoreDx>
void layer_norm_backward_rows(const T* g, const T* x, const acc_t<T>* mean, const acc_t<T>* rstd, const T* weight,
                              bool want_dx, T* dweight, T* dbias, int64_t M, int64_t N, StoreDx&& store_dx) {
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
        const T* gr = g + i * N;  // (N)
        const T* xr = x + i * N;  // (N)
        const Acc mu = mean[i], r = rstd[i];
        if (want_dx) {
          Acc sum_gw = 0, sum_gw_xhat = 0;
          for (int64_t j = 0; j < N; ++j) {
            const Acc xhat = (static_cast<Acc>(xr[j]) - mu) * r;
            const Acc gw = weight ? static_cast<Acc>(gr[j]) * static_cast<Acc>(weight[j]) : static_cast<Acc>(gr[j]);
            sum_gw += gw;
            sum_gw_xhat += gw * xhat;
          }
          const Acc a = sum_gw * inv_n, bb = sum_gw_xhat * inv_n;
          for (int64_t j = 0; j < N; ++j) {
            const Acc xhat = (static_cast<Acc>(xr[j]) - mu) * r;
            const Acc gw = weight ? static_cast<Acc>(gr[j]) * static_cast<Acc>(weight[j]) : static_cast<Acc>(gr[j]);
            store_dx(i, j, r * (gw - a - xhat * bb));
          }
        }
        if (need_wb) {
          for (int64_t j = 0; j < N; ++j) {
            const Acc gj = static_cast<Acc>(gr[j]);
            pw[j] += gj * (static_cast<Acc>(xr[j]) - mu) * r;
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

}  // namespace zae::kernels::cpu::detail
