// Reductions over any set of dims (empty dims = all dims), with keepdim.
#pragma once

#include <optional>
#include <utility>

#include "engine/tensor.h"

namespace zae {

Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
/// Variance with Bessel-style `correction` (1 = unbiased, as torch.var's default).
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
/// Max / min over dims (values only); gradient split evenly among ties.
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
/// Max / min along one dim: (values, int64 indices of the first extremum).
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// Index of the first maximum along dim (over the flattened tensor when dim is absent).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
/// log(sum(exp(x))) computed stably.
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim = false);
/// p-norm over dims: p = 2 (default), 1, any p > 0, or infinity.
Tensor norm(const Tensor& x, double p = 2.0, const Shape& dims = {}, bool keepdim = false);

}  // namespace zae
