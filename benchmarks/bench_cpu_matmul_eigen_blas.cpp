// Eigen's GEMM with EIGEN_USE_BLAS: Eigen's product expressions, executed by the
// linked BLAS (OpenBLAS's sgemm_). Variant (c) of bench_cpu_matmul.
//
// Invariants:
// - EIGEN_USE_BLAS swaps the definition of Eigen's GEMM templates, so this file must
//   never share a link unit with code that instantiates them without it: the linker
//   would keep one definition for both (an ODR violation that silently times the
//   wrong code). benchmarks/CMakeLists.txt therefore builds it as its own shared
//   library with hidden visibility; only the extern "C" function below is exported.
// - Computes the row-major product C = A * B of n x n float matrices.
#define EIGEN_USE_BLAS
#include <Eigen/Core>
#include <cstdint>

/// Row-major C = A * B (n x n, float32) through Eigen with its BLAS backend.
extern "C" __attribute__((visibility("default"))) void zae_bench_eigen_blas_sgemm(
    int64_t n, const float* a, const float* b, float* c) {
  // Column-major maps of row-major storage are the transposes, so C^T = B^T A^T
  // becomes c = b * a in column-major terms.
  const Eigen::Map<const Eigen::MatrixXf> a_t(a, n, n), b_t(b, n, n);
  Eigen::Map<Eigen::MatrixXf> c_t(c, n, n);
  c_t.noalias() = b_t * a_t;
}
