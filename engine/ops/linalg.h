// Matrix products (autograd-aware).
#pragma once

#include "engine/tensor.h"

namespace zae {

/// torch.matmul semantics: 1-D/2-D/N-D operands, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x W^T + b (b optional): x (..., in), weight (out, in), bias (out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace zae
