// CUDA strided-batched GEMM with fused epilogues: the CUDA twin of kernels/cpu/gemm.h,
// run through cuBLASLt (engine/cuda/cublas.h), with cublasGemmStridedBatchedEx as the
// fallback for problems cuBLASLt's heuristic rejects.
//
// Invariants:
// - Row-major throughout, exactly as kernels/cpu/gemm.h: op(A) is (m, k), op(B) is (k, n),
//   C is (m, n); lda/ldb/ldc are the row strides of the *stored* matrices in elements and
//   are at least their column counts. cuBLAS is column-major, so the launcher computes
//   C^T = op(B)^T op(A)^T: the operands swap and m/n swap; nothing is copied.
// - batch.stride_* are batch strides in elements; 0 broadcasts one A or B (or the bias,
//   always) to every batch entry. C entries of different batches must not overlap.
// - C[b] = act(alpha * op(A[b]) op(B[b]) + beta * C[b] + bias), where bias (n elements,
//   contiguous, the dtype of C) is added to every row when the epilogue has a bias, and
//   act is the tanh-approximated GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
//   when it has a gelu (cuBLASLt's GELU), else the identity.
// - beta == 0 means C is write-only (never read: NaN/Inf in it do not propagate).
//   k == 0 or alpha == 0 computes act(beta * C + bias) without reading A or B;
//   m == 0, n == 0 or batch.count == 0 touches no pointer.
// - float32 accumulates in float32 (TF32 inputs only when allow_tf32), float64 in
//   float64, bfloat16/float16 in float32 (scale type float); outputs round to nearest.
// - All pointers are device pointers of the current device (set it with DeviceGuard);
//   work is queued on `stream` and never synchronized.
// - Bad sizes or strides throw zae::Error before anything is queued.
#pragma once

#include <cstdint>

// cudaStream_t without <cuda_runtime.h>, so plain C++ (tests, engine ops) can include this.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace zae::kernels::cuda {

/// Element type of A, B, C and the bias.
enum class GemmType : uint8_t { float32, float64, bfloat16, float16 };

/// What is applied to the product before it is stored (see the file header).
enum class GemmEpilogue : uint8_t { none, bias, gelu, bias_gelu };

/// Which library ran the product (returned by gemm).
enum class GemmRoute : uint8_t {
  none,      ///< nothing to do (m, n or batch is 0)
  epilogue,  ///< k == 0 or alpha == 0: only the scaling/epilogue kernel ran
  cublaslt,  ///< cublasLtMatmul, epilogue fused
  cublas,    ///< cublasGemmStridedBatchedEx, then the epilogue kernel when there is one
};

/// Batch count and strides (elements) of a strided-batched GEMM.
struct GemmBatch {
  int64_t count = 1;
  int64_t stride_a = 0;
  int64_t stride_b = 0;
  int64_t stride_c = 0;
};

/// C[b] = act(alpha * op(A[b]) op(B[b]) + beta * C[b] + bias) for b in [0, batch.count),
/// row-major (see the file header). `force_cublas` skips cuBLASLt (tests, benchmarks).
/// Returns the route that ran.
GemmRoute gemm(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, const void* a, int64_t lda,
               const void* b, int64_t ldb, void* c, int64_t ldc, const GemmBatch& batch, float alpha, float beta,
               GemmType type, bool allow_tf32, GemmEpilogue epilogue, const void* bias, cudaStream_t stream,
               bool force_cublas = false);

/// "float32", "float64", "bfloat16" or "float16".
const char* gemm_type_name(GemmType type);

}  // namespace zae::kernels::cuda
