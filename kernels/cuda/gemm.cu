// CUDA GEMM launcher (kernels/cuda/gemm.h): validates, maps the row-major problem onto
// cuBLAS's column-major one (C^T = op(B)^T op(A)^T: operands and m/n swap), runs it
// through cuBLASLt with the epilogue fused, or through cublasGemmStridedBatchedEx plus
// gemm_epilogue_kernel when cuBLASLt has no algorithm. Degenerate sizes never reach cuBLAS.
#include "kernels/cuda/gemm.h"

#include <algorithm>

#include "engine/cuda/cublas.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_epilogue.cuh"

namespace zae::kernels::cuda {

namespace {

constexpr int kEpilogueThreads = 256;
constexpr int64_t kEpilogueMaxBlocks = int64_t{1} << 16;

// C = act(scale * C + bias) on `stream`; C is read only when read_c.
template <class T>
void launch_epilogue(void* c, int64_t ldc, int64_t stride_c, int64_t m, int64_t n, int64_t count, float scale,
                     bool read_c, const void* bias, bool gelu, cudaStream_t stream) {
  const int64_t total = count * m * n;
  const int64_t blocks = std::min((total + kEpilogueThreads - 1) / kEpilogueThreads, kEpilogueMaxBlocks);
  gemm_epilogue_kernel<T><<<static_cast<unsigned>(blocks), kEpilogueThreads, 0, stream>>>(
      static_cast<T*>(c), ldc, stride_c, m, n, count, static_cast<acc_t<T>>(scale), read_c,
      static_cast<const T*>(bias), gelu);
}

void epilogue(GemmType type, void* c, int64_t ldc, int64_t stride_c, int64_t m, int64_t n, int64_t count,
              float scale, bool read_c, const void* bias, bool gelu, cudaStream_t stream) {
  switch (type) {
    case GemmType::float32:
      return launch_epilogue<float>(c, ldc, stride_c, m, n, count, scale, read_c, bias, gelu, stream);
    case GemmType::float64:
      return launch_epilogue<double>(c, ldc, stride_c, m, n, count, scale, read_c, bias, gelu, stream);
    case GemmType::bfloat16:
      return launch_epilogue<BFloat16>(c, ldc, stride_c, m, n, count, scale, read_c, bias, gelu, stream);
    case GemmType::float16:
      return launch_epilogue<Half>(c, ldc, stride_c, m, n, count, scale, read_c, bias, gelu, stream);
  }
  ZAE_FAIL("cuda gemm: unknown GemmType ", static_cast<int>(type));
}

cublasLtEpilogue_t lt_epilogue(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::gelu: return CUBLASLT_EPILOGUE_GELU;
    case GemmEpilogue::bias_gelu: return CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  ZAE_FAIL("cuda gemm: unknown GemmEpilogue ", static_cast<int>(e));
}

}  // namespace

const char* gemm_type_name(GemmType type) {
  switch (type) {
    case GemmType::float32: return "float32";
    case GemmType::float64: return "float64";
    case GemmType::bfloat16: return "bfloat16";
    case GemmType::float16: return "float16";
  }
  return "unknown";
}

GemmRoute gemm(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, const void* a, int64_t lda,
               const void* b, int64_t ldb, void* c, int64_t ldc, const GemmBatch& batch, float alpha, float beta,
               GemmType type, bool allow_tf32, GemmEpilogue epi, const void* bias, cudaStream_t stream,
               bool force_cublas) {
  const char* tn = gemm_type_name(type);
  ZAE_CHECK(m >= 0 && n >= 0 && k >= 0 && batch.count >= 0, "cuda gemm (", tn, "): negative size m=", m, " n=", n,
            " k=", k, " batch=", batch.count);
  // Stored A is (m, k), or (k, m) when trans_a; stored B is (k, n), or (n, k) when trans_b.
  const int64_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  ZAE_CHECK(lda >= std::max<int64_t>(a_cols, 1) && ldb >= std::max<int64_t>(b_cols, 1) &&
                ldc >= std::max<int64_t>(n, 1),
            "cuda gemm (", tn, "): row strides lda=", lda, " ldb=", ldb, " ldc=", ldc,
            " are smaller than the rows they step over (", a_cols, ", ", b_cols, ", ", n, "; m=", m, " n=", n,
            " k=", k, " trans_a=", trans_a, " trans_b=", trans_b, ")");
  ZAE_CHECK(batch.stride_a >= 0 && batch.stride_b >= 0 && batch.stride_c >= 0, "cuda gemm (", tn,
            "): negative batch stride (", batch.stride_a, ", ", batch.stride_b, ", ", batch.stride_c, ")");
  ZAE_CHECK(batch.count <= 1 || m * n == 0 || batch.stride_c > 0, "cuda gemm (", tn, "): batch of ", batch.count,
            " outputs with C batch stride 0 would write one matrix from every batch entry");
  const bool has_bias = epi == GemmEpilogue::bias || epi == GemmEpilogue::bias_gelu;
  const bool has_gelu = epi == GemmEpilogue::gelu || epi == GemmEpilogue::bias_gelu;
  ZAE_CHECK(!has_bias || bias != nullptr, "cuda gemm (", tn, "): the bias epilogue needs a bias pointer");
  if (m == 0 || n == 0 || batch.count == 0) return GemmRoute::none;
  const void* bias_ptr = has_bias ? bias : nullptr;

  if (k == 0 || alpha == 0.0f) {
    // C = act(beta * C + bias): A and B are not read.
    epilogue(type, c, ldc, batch.stride_c, m, n, batch.count, beta, beta != 0.0f, bias_ptr, has_gelu, stream);
    CUDA_CHECK(cudaGetLastError());
    return GemmRoute::epilogue;
  }

  zae::cuda::ColumnMajorGemm g;
  g.trans_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.trans_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.m = n;
  g.n = m;
  g.k = k;
  g.a = b;
  g.lda = ldb;
  g.stride_a = batch.stride_b;
  g.b = a;
  g.ldb = lda;
  g.stride_b = batch.stride_a;
  g.c = c;
  g.ldc = ldc;
  g.stride_c = batch.stride_c;
  g.batch = batch.count;
  const double alpha64 = alpha, beta64 = beta;
  g.alpha = &alpha;
  g.beta = &beta;
  switch (type) {
    case GemmType::float32:
      g.data_type = CUDA_R_32F;
      g.compute = allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      g.scale_type = CUDA_R_32F;
      break;
    case GemmType::float64:
      g.data_type = CUDA_R_64F;
      g.compute = CUBLAS_COMPUTE_64F;
      g.scale_type = CUDA_R_64F;
      g.alpha = &alpha64;
      g.beta = &beta64;
      break;
    case GemmType::bfloat16:
      g.data_type = CUDA_R_16BF;
      g.compute = CUBLAS_COMPUTE_32F;
      g.scale_type = CUDA_R_32F;
      break;
    case GemmType::float16:
      g.data_type = CUDA_R_16F;
      g.compute = CUBLAS_COMPUTE_32F;
      g.scale_type = CUDA_R_32F;
      break;
  }
  g.epilogue = lt_epilogue(epi);
  g.bias = bias_ptr;

  GemmRoute route = GemmRoute::cublaslt;
  if (force_cublas || !zae::cuda::lt_matmul(g, stream)) {
    g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    g.bias = nullptr;
    zae::cuda::cublas_gemm(g, stream);
    if (epi != GemmEpilogue::none)
      epilogue(type, c, ldc, batch.stride_c, m, n, batch.count, 1.0f, true, bias_ptr, has_gelu, stream);
    route = GemmRoute::cublas;
  }
  CUDA_CHECK(cudaGetLastError());
  return route;
}

}  // namespace zae::kernels::cuda
