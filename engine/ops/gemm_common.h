// Pieces shared by the ops that drive GEMM themselves: matmul / linear (linalg.cpp),
// linear_gelu and linear_cross_entropy. Internal to engine/ops.
// Invariants: mat_layout describes a stored matrix only when GEMM can read it without a
// copy (one unit-stride dim, the other stride >= the unit dim's extent); cuda_gemm_type
// (CUDA builds) maps exactly the four floating dtypes and fails naming the op otherwise;
// linear_grads computes the gradients of y = x W^T + b from dy, entries not requested
// by the context staying undefined.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"

#ifdef ZAE_WITH_CUDA
#include "kernels/cuda/gemm.h"
#endif

namespace zae {

namespace autograd {
struct BackwardContext;
}

/// How GEMM reads one stored (rows, cols) matrix: as stored (trans = false, ld = row
/// stride) or transposed (trans = true, ld = column stride).
struct MatLayout {
  bool trans = false;
  int64_t ld = 1;
};

/// The layout of a (rows, cols) matrix with row stride rs and column stride cs, or
/// nothing when GEMM cannot read it in place. A dim of size <= 1 is never stepped along,
/// so its stride does not matter.
inline std::optional<MatLayout> mat_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const bool row_major = (cols <= 1 || cs == 1) && (rows <= 1 || rs >= std::max<int64_t>(cols, 1));
  if (row_major) return MatLayout{false, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  const bool col_major = (rows <= 1 || rs == 1) && (cols <= 1 || cs >= std::max<int64_t>(rows, 1));
  if (col_major) return MatLayout{true, cols <= 1 ? std::max<int64_t>(rows, 1) : cs};
  return std::nullopt;
}

#ifdef ZAE_WITH_CUDA
/// The cuBLASLt element type of dtype `dt`; fails naming `op` for a non-floating dtype.
inline kernels::cuda::GemmType cuda_gemm_type(DType dt, const char* op) {
  switch (dt) {
    case DType::float32: return kernels::cuda::GemmType::float32;
    case DType::float64: return kernels::cuda::GemmType::float64;
    case DType::bfloat16: return kernels::cuda::GemmType::bfloat16;
    case DType::float16: return kernels::cuda::GemmType::float16;
    default: break;
  }
  ZAE_FAIL(op, ": dtype ", dt, " is not supported on CUDA (expected float32, float64, bfloat16 or float16)");
}
#endif

/// Gradients (dx, dweight, dbias) of y = x W^T + b from g2 = dy as (rows, out_features):
/// dx = g2 W reshaped to x_shape, dweight = g2^T x, dbias = column sums of g2. x (saved
/// as x_shape, in_features last) is read only for dweight, weight only for dx.
std::vector<Tensor> linear_grads(const Tensor& g2, const Tensor& x, const Tensor& weight, const Shape& x_shape,
                                 int64_t in_f, const autograd::BackwardContext& ctx);

}  // namespace zae
