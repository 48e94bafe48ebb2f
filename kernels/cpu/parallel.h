// parallel_for over [0, n) in chunks of at least `grain` iterations, on the CPU
// kernels' thread pool (kernels/cpu/thread_pool.h). Small ranges run inline on the
// calling thread, and so do calls from inside a parallel task.
// Invariant: chunk boundaries depend only on n, grain and num_threads(), never on which
// thread runs a chunk, so results are reproducible for a fixed thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace zae::kernels::cpu {

inline constexpr int64_t kDefaultGrain = 32768;

template <class Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  const int threads = num_threads();
  if (n > grain && threads > 1 && !in_parallel()) {
    const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
    run_tasks(chunks, [&](int64_t c) { fn(n * c / chunks, n * (c + 1) / chunks); });
    return;
  }
  fn(int64_t{0}, n);
}

}  // namespace zae::kernels::cpu
