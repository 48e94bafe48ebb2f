// group_norm: torch.nn.functional.group_norm (autograd-aware), the stateless core of
// nn::GroupNorm.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace zae {

/// Normalises x (N, C, *) over each group of C / num_groups consecutive channels (and
/// all spatial positions) per sample, then applies the optional per-channel affine
/// weight/bias (C). C must be divisible by num_groups. One fused backward to x,
/// weight and bias.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);

}  // namespace zae
