// CPU strided-batched GEMM over OpenBLAS (cblas_sgemm/cblas_dgemm) or Eigen.
//
// Invariants (the full contract is in gemm.h):
// - Row-major; lda/ldb/ldc are row strides of the stored matrices, stride_* batch strides.
// - beta == 0 never reads C; alpha == 0 or k == 0 never reads A or B and gives
//   C = beta * C; m == 0, n == 0 or batch == 0 touches nothing. These cases are handled
//   here, before any backend is called, so they do not depend on what the backend
//   does with degenerate arguments (BLAS rejects lda < 1, for instance).
// - The backend is fixed at build time: ZAE_WITH_OPENBLAS=1 selects OpenBLAS, else
//   Eigen. With OpenBLAS, a problem whose sizes do not fit OpenBLAS's 32-bit int
//   falls back to Eigen, which always is linked.
// - Half/BFloat16: A, B (and C when beta != 0) are widened to packed float buffers,
//   the float GEMM runs, and C is rounded back to nearest even.
#include "kernels/cpu/gemm.h"

#include "kernels/cpu/thread_pool.h"

// GCC 12 flags its own AVX-512 intrinsics (`__m512 __Y = __Y;`) as maybe-uninitialized
// wherever Eigen's vectorized GEMM inlines them (GCC bug 105593). Not our code; keep
// the build log readable. Must precede the first include of <immintrin.h>.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(ZAE_WITH_OPENBLAS) && ZAE_WITH_OPENBLAS
#include <cblas.h>
#define ZAE_GEMM_OPENBLAS 1
#else
#define ZAE_GEMM_OPENBLAS 0
#endif

namespace zae::kernels::cpu {
namespace {

// ---------------------------------------------------------------------------------
// Argument checks and the degenerate cases.
// ---------------------------------------------------------------------------------

[[noreturn]] void bad_argument(const std::string& what) {
  throw std::invalid_argument("zae::kernels::cpu::gemm: " + what);
}

// Throws on sizes the contract rejects. Row strides are checked only for the
// operands that will be read: A and B when k > 0 and alpha != 0, C when m, n > 0.
void check_args(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const void* a, int64_t lda, const void* b, int64_t ldb, const void* c,
                int64_t ldc, int64_t batch) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) {
    bad_argument("negative size: m=" + std::to_string(m) + " n=" + std::to_string(n) +
                 " k=" + std::to_string(k) + " batch=" + std::to_string(batch));
  }
  if (m == 0 || n == 0 || batch == 0) return;
  if (c == nullptr) bad_argument("c is null");
  if (ldc < n) bad_argument("ldc=" + std::to_string(ldc) + " < n=" + std::to_string(n));
  if (k == 0 || alpha == 0.0f) return;
  if (a == nullptr || b == nullptr) bad_argument("a or b is null");
  const int64_t a_cols = trans_a ? m : k;  // stored A is (k, m) when transposed
  const int64_t b_cols = trans_b ? k : n;  // stored B is (n, k) when transposed
  if (lda < a_cols) {
    bad_argument("lda=" + std::to_string(lda) + " < " + std::to_string(a_cols) +
                 " (columns of the stored A)");
  }
  if (ldb < b_cols) {
    bad_argument("ldb=" + std::to_string(ldb) + " < " + std::to_string(b_cols) +
                 " (columns of the stored B)");
  }
}

// C = beta * C for one (m, n) matrix; beta == 0 writes zeros without reading C.
template <class T>
void scale_c(int64_t m, int64_t n, float beta, T* c, int64_t ldc) {
  if (beta == 1.0f) return;
  using Acc = acc_t<T>;
  for (int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) {
      row[j] = beta == 0.0f ? T(Acc(0)) : T(Acc(beta) * Acc(row[j]));
    }
  }
}

// ---------------------------------------------------------------------------------
// Eigen backend: one (m, n) product over row-major maps with explicit row strides.
// ---------------------------------------------------------------------------------

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using RowMap = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// c = alpha * op_a * op_b + beta * c. `.noalias()` lets Eigen write the product straight
// into c; for beta == 0 Eigen either zero-fills c first or evaluates coefficient-wise,
// and in both cases never reads it.
template <class T, class OpA, class OpB>
void eigen_product(const OpA& op_a, const OpB& op_b, T alpha, T beta, RowMap<T>& c) {
  if (beta == T(0)) {
    c.noalias() = alpha * op_a * op_b;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * op_a * op_b;
  }
}

template <class T>
void eigen_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  // Maps of the stored matrices; op() is a transpose() view, not a copy.
  const ConstRowMap<T> a_map(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
  const ConstRowMap<T> b_map(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
  RowMap<T> c_map(c, m, n, Eigen::OuterStride<>(ldc));  // (m, n)
  // Each combination is its own expression type, hence four calls.
  if (!trans_a && !trans_b) {
    eigen_product(a_map, b_map, alpha, beta, c_map);
  } else if (!trans_a && trans_b) {
    eigen_product(a_map, b_map.transpose(), alpha, beta, c_map);
  } else if (trans_a && !trans_b) {
    eigen_product(a_map.transpose(), b_map, alpha, beta, c_map);
  } else {
    eigen_product(a_map.transpose(), b_map.transpose(), alpha, beta, c_map);
  }
}

// ---------------------------------------------------------------------------------
// OpenBLAS backend: one cblas_?gemm call per batch entry (CblasRowMajor takes our
// row strides as they are).
// ---------------------------------------------------------------------------------

#if ZAE_GEMM_OPENBLAS
bool fits_blasint(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  constexpr int64_t max = std::numeric_limits<blasint>::max();
  return m <= max && n <= max && k <= max && lda <= max && ldb <= max && ldc <= max;
}

void blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
               const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
               double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

// One thread pool, not two: a pthread OpenBLAS keeps its own workers, which compete
// with the CPU thread pool's (kernels/cpu/thread_pool.h) for the same cores (MLP
// training step on 2 cores: 29 ms with one thread, 105-135 ms with two threads in each
// pool under load). So when the pool has several threads, a large GEMM is split into
// row (or column) blocks, one pool task each, every block a single-threaded OpenBLAS
// call; OpenBLAS's thread count is held at 1 for that span and restored after. With one
// pool thread, or inside a pool task, OpenBLAS runs as configured.
class SingleThreadedOpenBlas {
 public:
  SingleThreadedOpenBlas() {
    saved_ = openblas_get_num_threads();
    if (saved_ > 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedOpenBlas() {
    if (saved_ > 1) openblas_set_num_threads(saved_);
  }
  SingleThreadedOpenBlas(const SingleThreadedOpenBlas&) = delete;
  SingleThreadedOpenBlas& operator=(const SingleThreadedOpenBlas&) = delete;

 private:
  int saved_ = 1;
};

// Below this many flops (2 m n k) a GEMM stays one call: waking a thread costs ~10 us.
constexpr double kSplitGemmFlops = double(1 << 22);

template <class T>
void blas_gemm_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                     int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const int threads = in_parallel() ? 1 : num_threads();
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t parts = std::min<int64_t>(threads, extent / 32);  // blocks of >= 32 rows / columns
  if (parts > 1 && 2.0 * double(m) * double(n) * double(k) >= kSplitGemmFlops) {
    SingleThreadedOpenBlas single;
    run_tasks(parts, [&](int64_t p) {
      // Block [lo, hi) of the split dim, boundaries on multiples of 16.
      const int64_t lo = p == 0 ? 0 : extent * p / parts / 16 * 16;
      const int64_t hi = p == parts - 1 ? extent : extent * (p + 1) / parts / 16 * 16;
      if (by_rows) {  // rows of op(A) and C
        blas_gemm(trans_a, trans_b, hi - lo, n, k, alpha, a + (trans_a ? lo : lo * lda), lda, b, ldb, beta,
                  c + lo * ldc, ldc);
      } else {  // columns of op(B) and C
        blas_gemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, b + (trans_b ? lo * ldb : lo), ldb, beta, c + lo,
                  ldc);
      }
    });
    return;
  }
  blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#endif

// ---------------------------------------------------------------------------------
// float / double: loop over the batch, one backend call per entry.
// ---------------------------------------------------------------------------------

template <class T>
void gemm_native(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb,
                 int64_t stride_b, float beta, T* c, int64_t ldc, int64_t stride_c,
                 int64_t batch) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0 || alpha == 0.0f) {  // A and B are not read
    for (int64_t i = 0; i < batch; ++i) scale_c(m, n, beta, c + i * stride_c, ldc);
    return;
  }
#if ZAE_GEMM_OPENBLAS
  // OpenBLAS zero-fills C for beta == 0 (never multiplies it), so NaN in C stays out.
  if (fits_blasint(m, n, k, lda, ldb, ldc)) {
    for (int64_t i = 0; i < batch; ++i) {
      blas_gemm_split(trans_a, trans_b, m, n, k, T(alpha), a + i * stride_a, lda, b + i * stride_b, ldb,
                      T(beta), c + i * stride_c, ldc);
    }
    return;
  }
#endif
  for (int64_t i = 0; i < batch; ++i) {
    eigen_gemm<T>(trans_a, trans_b, m, n, k, T(alpha), a + i * stride_a, lda, b + i * stride_b,
                  ldb, T(beta), c + i * stride_c, ldc);
  }
}

// ---------------------------------------------------------------------------------
// Half / BFloat16: widen to float, run the float GEMM, round back.
// ---------------------------------------------------------------------------------

// Copies a (rows, cols) matrix with row stride ld into a packed float buffer.
template <class T>
void widen(const T* src, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& dst) {
  dst.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = static_cast<float>(src[i * ld + j]);
  }
}

template <class T>
void gemm_narrow(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb,
                 int64_t stride_b, float beta, T* c, int64_t ldc, int64_t stride_c,
                 int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0 || alpha == 0.0f) {  // A and B are not read
    for (int64_t i = 0; i < batch; ++i) scale_c(m, n, beta, c + i * stride_c, ldc);
    return;
  }
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;  // stored A
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;  // stored B
  std::vector<float> a_f, b_f, c_f(static_cast<size_t>(m * n));    // packed buffers
  for (int64_t i = 0; i < batch; ++i) {
    // A batch stride of 0 broadcasts one matrix: widen it once.
    if (i == 0 || stride_a != 0) widen(a + i * stride_a, a_rows, a_cols, lda, a_f);
    if (i == 0 || stride_b != 0) widen(b + i * stride_b, b_rows, b_cols, ldb, b_f);
    T* c_i = c + i * stride_c;
    if (beta != 0.0f) widen(c_i, m, n, ldc, c_f);  // beta == 0: C stays unread
    gemm_native<float>(trans_a, trans_b, m, n, k, alpha, a_f.data(), a_cols, 0, b_f.data(),
                       b_cols, 0, beta, c_f.data(), n, 0, 1);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t j = 0; j < n; ++j) c_i[r * ldc + j] = T(c_f[r * n + j]);
    }
  }
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const T* a,
          int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, float beta,
          T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  check_args(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, batch);
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    gemm_native<T>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                   ldc, stride_c, batch);
  } else {
    gemm_narrow<T>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                   ldc, stride_c, batch);
  }
}

const char* gemm_backend_name() { return ZAE_GEMM_OPENBLAS ? "openblas" : "eigen"; }

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          int64_t, const float*, int64_t, int64_t, float, float*, int64_t,
                          int64_t, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, float, const double*, int64_t,
                           int64_t, const double*, int64_t, int64_t, float, double*, int64_t,
                           int64_t, int64_t);
template void gemm<Half>(bool, bool, int64_t, int64_t, int64_t, float, const Half*, int64_t,
                         int64_t, const Half*, int64_t, int64_t, float, Half*, int64_t, int64_t,
                         int64_t);
template void gemm<BFloat16>(bool, bool, int64_t, int64_t, int64_t, float, const BFloat16*,
                             int64_t, int64_t, const BFloat16*, int64_t, int64_t, float,
                             BFloat16*, int64_t, int64_t, int64_t);

}  // namespace zae::kernels::cpu
