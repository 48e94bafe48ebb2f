// Elementwise unary ops (autograd-aware). Floating dtypes unless noted.
#pragma once

#include <limits>
#include <optional>

#include "engine/tensor.h"

namespace zae {

Tensor neg(const Tensor& x);   // numeric dtypes
Tensor abs(const Tensor& x);   // numeric dtypes; gradient sign(x) (0 at 0)
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);  // gradient 0 at 0
enum class GeluApprox { none, tanh };
Tensor gelu(const Tensor& x, GeluApprox approximate = GeluApprox::none);
Tensor silu(const Tensor& x);
/// x ** exponent.
Tensor pow(const Tensor& x, double exponent);
/// Elementwise base ** exponent with broadcasting.
Tensor pow(const Tensor& base, const Tensor& exponent);
/// Clamps to [min, max]; either bound may be absent. Gradient passes where min <= x <= max.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);

}  // namespace zae
