// CPU strided-batched GEMM: the CPU path of matmul/linear and the test oracle for
// the cuBLAS(Lt) path.
//
// Invariants:
// - Row-major throughout. op(A) is (m, k), op(B) is (k, n), C is (m, n). The stored
//   A is (m, k) when !trans_a and (k, m) when trans_a (likewise B); lda/ldb/ldc are the
//   row strides of the *stored* matrices in elements, and must be at least their
//   column counts.
// - stride_a/stride_b/stride_c are the batch strides in elements (0 broadcasts one
//   A or B to every batch entry). The C entries of different batches must not overlap.
// - beta == 0 means C is write-only: it is never read, so NaN/Inf in it do not
//   propagate. k == 0 or alpha == 0 gives C = beta * C; m == 0, n == 0 or
//   batch == 0 is a no-op that touches no pointer.
// - The backend (OpenBLAS or Eigen) is chosen when the library is built
//   (cmake/ZaeDependencies.cmake); gemm_backend_name() says which.
// - Half/BFloat16 widen to float, run the float GEMM (accumulating in float) and
//   round to nearest even on store.
// - Bad sizes (negative, or a row stride smaller than the row) throw
//   std::invalid_argument; nothing is written then.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b in [0, batch), row-major.
/// op(X) = X^T when trans_x. See the file header for the exact contract.
/// Defined for T = float, double, Half, BFloat16.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b,
          float beta, T* c, int64_t ldc, int64_t stride_c, int64_t batch);

/// The CPU GEMM backend this library was built with: "openblas" or "eigen".
const char* gemm_backend_name();

extern template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                 int64_t, int64_t, const float*, int64_t, int64_t, float, float*,
                                 int64_t, int64_t, int64_t);
extern template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, float, const double*,
                                  int64_t, int64_t, const double*, int64_t, int64_t, float,
                                  double*, int64_t, int64_t, int64_t);
extern template void gemm<Half>(bool, bool, int64_t, int64_t, int64_t, float, const Half*,
                                int64_t, int64_t, const Half*, int64_t, int64_t, float, Half*,
                                int64_t, int64_t, int64_t);
extern template void gemm<BFloat16>(bool, bool, int64_t, int64_t, int64_t, float,
                                    const BFloat16*, int64_t, int64_t, const BFloat16*, int64_t,
                                    int64_t, float, BFloat16*, int64_t, int64_t, int64_t);

}  // namespace zae::kernels::cpu
