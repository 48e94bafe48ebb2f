// Argument checks shared by the normalisation ops (layer_norm, add_layer_norm,
// group_norm): the optional affine parameters and layer_norm's normalized_shape.
// Invariants: each check throws zae::Error (ZAE_CHECK) naming the op, the argument and
// the values involved, and does nothing else; an undefined affine parameter passes.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace zae {

/// Checks the optional affine parameter `p` of normalisation op `op` (`what` is "weight"
/// or "bias"): when defined, it must have shape `expected` (called `expected_name` in the
/// error) and the input x's dtype and device.
void check_norm_affine(const char* op, const char* what, const Tensor& p, const Tensor& x, const Shape& expected,
                       const char* expected_name);

/// Checks that normalized_shape has at least one dim and that x's trailing dims equal it.
void check_normalized_shape(const char* op, const Tensor& x, const Shape& normalized_shape);

}  // namespace zae
