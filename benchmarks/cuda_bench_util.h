// What the GPU benchmarks share: a checked CUDA call, the event timing loop, the host-clock
// loop for whole training steps, and cuBLAS's own GEMM on given buffers (the ceiling our
// matmuls are compared with).
// Timing (time_ms): CUDA events on the legacy default stream around `iters` back-to-back
// calls after 3 warm-up calls, median of 5 rounds (the engine's ops run on the current
// stream, which is the legacy default stream unless a caller changed it).
// Timing (host_time_ms): the host's steady clock around each round of back-to-back calls,
// the device synchronised before and after the round; no warm-up (callers warm up).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "engine/dtype.h"

#define ZAE_BENCH_CHECK_CUDA(x)                                            \
  do {                                                                     \
    cudaError_t e_ = (x);                                                  \
    if (e_ != cudaSuccess) {                                               \
      std::fprintf(stderr, "%s failed: %s\n", #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

namespace zae::bench {

/// Median milliseconds of one call of fn.
inline double time_ms(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 3; ++i) fn();
  ZAE_BENCH_CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  ZAE_BENCH_CHECK_CUDA(cudaEventCreate(&a));
  ZAE_BENCH_CHECK_CUDA(cudaEventCreate(&b));
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    ZAE_BENCH_CHECK_CUDA(cudaEventRecord(a));
    for (int i = 0; i < iters; ++i) fn();
    ZAE_BENCH_CHECK_CUDA(cudaEventRecord(b));
    ZAE_BENCH_CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    ZAE_BENCH_CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    rounds.push_back(ms / iters);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(rounds.begin(), rounds.end());
  return rounds[2];
}

/// Median over `rounds` rounds of the host-clock milliseconds per call of `step`, each round
/// `steps` back-to-back calls between two device synchronisations (host work included).
template <class Step>
double host_time_ms(const Step& step, int steps, int rounds) {
  std::vector<double> per_step;
  for (int r = 0; r < rounds; ++r) {
    ZAE_BENCH_CHECK_CUDA(cudaDeviceSynchronize());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step();
    ZAE_BENCH_CHECK_CUDA(cudaDeviceSynchronize());
    const std::chrono::duration<double, std::milli> dt = std::chrono::steady_clock::now() - t0;
    per_step.push_back(dt.count() / steps);
  }
  std::sort(per_step.begin(), per_step.end());
  return per_step[per_step.size() / 2];
}

/// Median ms of cublasGemmEx computing the row-major C (m, n) = A (m, k) B (k, n) of dtype
/// `dt` (float32, bfloat16 or float16; float32 accumulation) on the given device buffers.
inline double cublas_gemm_ms(DType dt, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c,
                             int iters) {
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublasCreate failed\n");
    std::exit(1);
  }
  const float alpha = 1, beta = 0;
  const cudaDataType t = dt == DType::bfloat16 ? CUDA_R_16BF : dt == DType::float16 ? CUDA_R_16F : CUDA_R_32F;
  // Column-major view of the row-major product: C^T = B^T A^T.
  const double ms = time_ms(
      [&] {
        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                     &alpha, b, t, static_cast<int>(n), a, t, static_cast<int>(k), &beta, c, t, static_cast<int>(n),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      },
      iters);
  cublasDestroy(h);
  return ms;
}

}  // namespace zae::bench
