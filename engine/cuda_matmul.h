// Process-wide switches of the CUDA matmul path (engine/ops/linalg.cpp ->
// kernels/cuda/gemm.h). A plain header: usable in every build; without the CUDA
// backend the switches are only stored.
// Invariants: allow_tf32() is false until set_allow_tf32(true) is called, so float32
// matmuls on CUDA compute in full float32 (CUBLAS_COMPUTE_32F) by default. The flag is
// an atomic read at each matmul's dispatch; changing it affects matmuls issued afterwards.
#pragma once

namespace zae::cuda {

/// Lets float32 matmuls/linear on CUDA use TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32:
/// inputs rounded to a 10-bit mantissa, float32 accumulation). Default: false.
/// bfloat16/float16/float64 matmuls are unaffected.
void set_allow_tf32(bool allow);

/// Whether float32 matmuls on CUDA may use TF32 (see set_allow_tf32).
bool allow_tf32();

}  // namespace zae::cuda
