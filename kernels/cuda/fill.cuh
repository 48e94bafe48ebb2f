// CUDA random-fill kernels (uniform, normal, randint over a dense buffer): grid-stride
// over Philox counter blocks, per-thread work in kernels/simt/random_body.h (host-tested
// against kernels/cpu/fill.cpp). Constant fills use the generic elementwise kernels.
#pragma once

#include <cstdint>

#include "kernels/simt/launch_plan.h"
#include "kernels/simt/random_body.h"

namespace zae::kernels::cuda {

template <class T>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  simt::uniform_body<T>(tid, static_cast<int64_t>(gridDim.x) * blockDim.x, out, n, seed, offset, low, high);
}

template <class T>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  simt::normal_body<T>(tid, static_cast<int64_t>(gridDim.x) * blockDim.x, out, n, seed, offset, mean, std);
}

template <class T>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    randint_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  simt::randint_body<T>(tid, static_cast<int64_t>(gridDim.x) * blockDim.x, out, n, seed, offset, low, high);
}

}  // namespace zae::kernels::cuda
