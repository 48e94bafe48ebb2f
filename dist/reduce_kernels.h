// The elementwise reductions behind the CPU collectives: out[i] = op(a[i], b[i]) over raw
// memory of one dtype. Gloo's all-reduce calls them as its reduce function and the ring
// collectives (dist/ring_all_reduce.h) call them on CPU tensors. Internal to dist/.
// Invariants: `out` may alias `a` or `b` exactly (in-place accumulation); the "native"
// dtypes are float32, float64, int32, int64 and uint8 (bfloat16/float16 are reduced in
// float32 by the callers, so every partial sum is rounded once); min and max propagate
// NaN (either operand NaN gives NaN); integer sums wrap around on overflow (two's
// complement, as PyTorch's CPU ops do); ReduceOp::avg reduces as sum (callers divide).
#pragma once

#include <cstddef>

#include "dist/process_group.h"
#include "engine/dtype.h"

namespace zae::dist::detail {

/// Signature shared with gloo::AllreduceOptions::Func (void pointers, element count).
using ReduceFn = void (*)(void* out, const void* a, const void* b, size_t n);

/// Whether `dtype` has a CPU reduce kernel (float32, float64, int32, int64, uint8).
bool is_native_reduce_dtype(DType dtype);

/// The kernel for (dtype, op); avg maps to sum. Fails naming `op_name` for other dtypes.
ReduceFn cpu_reduce_fn(DType dtype, ReduceOp op, const char* op_name);

/// data[i] /= divisor for n elements of a floating native dtype (float32 or float64).
void cpu_divide_inplace(DType dtype, void* data, size_t n, double divisor, const char* op_name);

}  // namespace zae::dist::detail
