// Copies between tensors of any dtype and device, and the in-place guard shared
// by every in-place op.
#pragma once

#include "engine/tensor.h"

namespace zae {

/// dst[...] = src[...] converted to dst's dtype, src broadcast to dst's shape.
/// Works across devices; no autograd (callers record their own nodes).
void copy_into(const Tensor& dst, const Tensor& src);

/// `t` itself when contiguous (or undefined), else a dense copy; records no graph
/// (op entries use it before handing raw pointers to a kernel).
Tensor dense_data(const Tensor& t);

/// Fails unless an in-place write to `t` is allowed: with grad mode on, neither `t`
/// nor `other` (if given) may require grad. Names the op.
void check_inplace(const char* op, const Tensor& t, const Tensor& other = Tensor());

}  // namespace zae
