// Fill kernels: constant fill over a strided view, and Philox random fills of a
// dense buffer (element i of the draw goes to out[i]; see kernels/philox.h).
#pragma once

#include <cstdint>

#include "kernels/strided.h"

namespace zae::kernels::cpu {

template <class T>
void fill(const StridedIter<1>& it, T* out, T value);

/// out[i] = low + (high - low) * U_i, U uniform [0,1) (float draw for 16/32-bit types, double draw for double;
/// half / bfloat16 keep the top 11 / 8 bits of the word so that U is exact in T and rand stays below 1).
template <class T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high);

/// out[i] = mean + std * N_i, N standard normal (Box-Muller on word pairs).
template <class T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std);

/// out[i] = low + floor(U_i * (high - low)) from a double draw; for integer and float dtypes.
template <class T>
void randint(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high);

}  // namespace zae::kernels::cpu
