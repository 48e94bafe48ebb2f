// Argument checks shared by the normalisation ops (contract in norm_checks.h).
#include "engine/ops/norm_checks.h"

#include "engine/error.h"

namespace zae {

void check_norm_affine(const char* op, const char* what, const Tensor& p, const Tensor& x, const Shape& expected,
                       const char* expected_name) {
  if (!p.defined()) return;
  ZAE_CHECK(p.shape() == expected, op, ": ", what, " has shape ", shape_str(p.shape()), " but ", expected_name,
            " is ", shape_str(expected));
  ZAE_CHECK(p.dtype() == x.dtype(), op, ": ", what, " has dtype ", p.dtype(), " but the input has dtype ", x.dtype());
  ZAE_CHECK(p.device() == x.device(), op, ": ", what, " is on ", p.device(), " but the input is on ", x.device());
}

void check_normalized_shape(const char* op, const Tensor& x, const Shape& normalized_shape) {
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  ZAE_CHECK(nd >= 1, op, ": normalized_shape must have at least one dim, got ", shape_str(normalized_shape));
  bool trailing = x.dim() >= nd;
  for (int64_t i = 0; trailing && i < nd; ++i) trailing = x.shape()[x.dim() - nd + i] == normalized_shape[i];
  ZAE_CHECK(trailing, op, ": input of shape ", shape_str(x.shape()), " does not end with normalized_shape ",
            shape_str(normalized_shape));
}

}  // namespace zae
