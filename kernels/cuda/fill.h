// CUDA fill kernels: constant fill over a strided view, and Philox random fills of a
// dense buffer, the twins of kernels/cpu/fill.h: for the same (seed, offset) element i
// gets exactly the CPU's value (same counter layout, same conversions). The caller makes
// the buffer's device current.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/strided.h"

namespace zae::kernels::cuda {

/// out[...] = value. T: every element type.
template <class T>
void fill(const StridedIter<1>& it, T* out, T value, cudaStream_t stream);

/// out[i] = low + (high - low) * U_i, as kernels::cpu::uniform. T: float, double, Half, BFloat16.
template <class T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high, cudaStream_t stream);

/// out[i] = mean + std * N_i, as kernels::cpu::normal. T: float, double, Half, BFloat16.
template <class T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std, cudaStream_t stream);

/// out[i] = low + floor(U_i * (high - low)), as kernels::cpu::randint. T: every dtype but bool.
template <class T>
void randint(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high, cudaStream_t stream);

}  // namespace zae::kernels::cuda
