// parallel_for over [0, n) in chunks of at least `grain` iterations (OpenMP).
// Small ranges run inline on the calling thread.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace zae::kernels::cpu {

inline constexpr int64_t kDefaultGrain = 32768;

template <class Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
#ifdef _OPENMP
  int threads = omp_get_max_threads();
  if (n > grain && threads > 1 && !omp_in_parallel()) {
    int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      fn(begin, end);
    }
    return;
  }
#endif
  fn(int64_t{0}, n);
}

}  // namespace zae::kernels::cpu
