// Device side of the GEMM epilogue that runs when cuBLASLt does not (the cublas fallback,
// k == 0, alpha == 0): C = act(scale * C + bias), elementwise over a strided batch of
// row-major (m, n) matrices.
// Invariants: C is read only when read_c (beta == 0 leaves it write-only); the bias
// (n elements, contiguous) is broadcast over rows and batches; act is the
// tanh-approximated GELU when gelu (cuBLASLt's CUBLASLT_EPILOGUE_GELU), else the identity;
// arithmetic in acc_t<T> (float for the 16-bit types, whose conversions come from
// kernels/numeric.h and round to nearest even).
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cuda {

/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <class A>
__device__ __forceinline__ A gelu_tanh(A x) {
  const A k0 = A(0.7978845608028654);  // sqrt(2 / pi)
  const A k1 = A(0.044715);
  return A(0.5) * x * (A(1) + tanh(k0 * (x + k1 * x * x * x)));
}

/// One thread per element in a grid-stride loop. c: (count, m, n) with row stride ldc and
/// batch stride stride_c; bias: (n) or null.
template <class T>
__global__ void gemm_epilogue_kernel(T* c, int64_t ldc, int64_t stride_c, int64_t m, int64_t n, int64_t count,
                                     acc_t<T> scale, bool read_c, const T* bias, bool gelu) {
  using A = acc_t<T>;
  const int64_t total = count * m * n;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
    const int64_t j = idx % n;
    const int64_t rest = idx / n;
    const int64_t i = rest % m;
    const int64_t b = rest / m;
    T* p = c + b * stride_c + i * ldc + j;
    A v = read_c ? scale * static_cast<A>(*p) : A(0);
    if (bias != nullptr) v += static_cast<A>(bias[j]);
    if (gelu) v = gelu_tanh(v);
    *p = T(v);
  }
}

}  // namespace zae::kernels::cuda
