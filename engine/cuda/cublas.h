// cuBLAS / cuBLASLt glue under kernels/cuda/gemm.h: CUBLAS_CHECK, handles, workspaces
// and a cache of cuBLASLt matmul plans. Everything here speaks cuBLAS's column-major
// vocabulary; the row-major mapping lives in the launcher. CUDA-only header: include it
// from .cu files and engine/cuda/*.cpp only.
//
// Invariants:
// - Handles are per thread and per device (the device current when asked), created on
//   first use and destroyed when the thread exits. cuBLASLt handles take the stream
//   per call; cublas_handle(stream) binds the stream and that stream's workspace.
// - One workspace of kCublasWorkspaceBytes per (device, stream), allocated from the
//   engine's caching allocator (Tensor::empty) for that stream and kept for the life
//   of the process; only work queued on that stream uses it, so it is never shared by
//   two kernels running at once.
// - A plan (matmul descriptor, layouts and the heuristic's algorithm, or "cuBLASLt has
//   none") is cached per thread under a key holding the device, every size, leading
//   dimension and batch stride, the transposes, data/compute/scale types, the epilogue
//   and the alignments (capped at 16 bytes) of A, B, C and the bias. The heuristic runs
//   once per key. The cache is cleared when it passes kMaxLtPlans entries.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/error.h"

/// Throws zae::Error naming the failed cuBLAS/cuBLASLt call and its status
/// ("cuBLAS error CUBLAS_STATUS_...: <description>").
#define CUBLAS_CHECK(call)                                                                                   \
  do {                                                                                                       \
    cublasStatus_t zae_cublas_status_ = (call);                                                              \
    if (zae_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                            \
      ::zae::detail::throw_error(::zae::detail::concat("cuBLAS error ", cublasGetStatusName(zae_cublas_status_), \
                                                       ": ", cublasGetStatusString(zae_cublas_status_)),     \
                                 #call, __FILE__, __LINE__);                                                 \
  } while (0)

namespace zae::cuda {

/// Bytes of each (device, stream) cuBLAS workspace.
inline constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
/// Plans a thread caches before its cache is cleared.
inline constexpr size_t kMaxLtPlans = 4096;

/// The calling thread's cuBLASLt handle for the current device.
cublasLtHandle_t cublaslt_handle();

/// The calling thread's cuBLAS handle for the current device, bound to `stream` and to
/// that stream's workspace; pointer mode host, reduced-precision reductions disallowed.
cublasHandle_t cublas_handle(cudaStream_t stream);

/// Device memory of kCublasWorkspaceBytes for work on `stream` of the current device.
struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
Workspace cublas_workspace(cudaStream_t stream);

/// One column-major strided-batched product D = epi(alpha op(A) op(B) + beta C [+ bias]),
/// with D == C (cuBLAS's m x n output, ld >= m). op(A) is m x k, op(B) is k x n.
struct ColumnMajorGemm {
  cublasOperation_t trans_a = CUBLAS_OP_N;
  cublasOperation_t trans_b = CUBLAS_OP_N;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 1, stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 1, stride_b = 0;
  void* c = nullptr;
  int64_t ldc = 1, stride_c = 0;
  int64_t batch = 1;
  cudaDataType_t data_type = CUDA_R_32F;  ///< of A, B, C, D and the bias
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale_type = CUDA_R_32F;
  const void* alpha = nullptr;  ///< host pointer to a scale_type value
  const void* beta = nullptr;   ///< host pointer to a scale_type value
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  ///< m elements, contiguous, when the epilogue adds a bias
};

/// Runs `g` with cuBLASLt on `stream` (current device), planning it on first sight.
/// Returns false, having queued nothing, when cuBLASLt has no algorithm for it.
bool lt_matmul(const ColumnMajorGemm& g, cudaStream_t stream);

/// Runs `g` with cublasGemmStridedBatchedEx on `stream`. Its epilogue must be DEFAULT.
void cublas_gemm(const ColumnMajorGemm& g, cudaStream_t stream);

/// Plans in the calling thread's cache (for tests).
size_t lt_plan_cache_size();

}  // namespace zae::cuda
