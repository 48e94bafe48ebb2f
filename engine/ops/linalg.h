// Matrix products (autograd-aware).
#pragma once

#include "engine/tensor.h"

namespace zae {

/// torch.matmul semantics: 1-D/2-D/N-D operands, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x W^T + b (b optional): x (..., in), weight (out, in), bias (out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

/// Options of linear_gelu.
struct LinearGeluOptions {
  /// Save only x and weight and recompute the pre-activation x W^T + b in backward (one
  /// extra GEMM) instead of saving it: less activation memory, more compute.
  bool recompute = false;
};
/// gelu(linear(x, weight, bias), GeluApprox::tanh) as one fused op (bias optional): on
/// CUDA the GELU runs in cuBLASLt's epilogue when the pre-activation is not saved
/// (engine/ops/linear_gelu.cpp).
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                   const LinearGeluOptions& opts = {});

}  // namespace zae
