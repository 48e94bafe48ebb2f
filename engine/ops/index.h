// Indexing ops (autograd-aware w.r.t. the source; indices are int64 or int32).
#pragma once

#include "engine/tensor.h"

namespace zae {

/// out[i][j] = x[index[i][j]][j] for dim 0 (torch.gather); index has x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// Rows (along dim) of x picked by a 1-D index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of x with src added at index along dim (torch.scatter_add).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace zae
