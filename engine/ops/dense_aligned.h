// dense_aligned: an operand for libraries that want dense, 16-byte-aligned memory
// (cuDNN's vectorized kernels). Invariant: the result holds t's values in t's dtype on
// t's device, is contiguous, and its data pointer is a multiple of 16 bytes; it is t
// itself when t already is such a tensor. Records no autograd.
#pragma once

#include <cstdint>

#include "engine/ops/copy.h"
#include "engine/tensor.h"

namespace zae {

/// t when dense and 16-byte aligned, else a dense copy (undefined stays undefined).
inline Tensor dense_aligned(const Tensor& t) {
  if (!t.defined()) return t;
  if (t.is_contiguous() && reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0) return t;
  Tensor out = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

}  // namespace zae
