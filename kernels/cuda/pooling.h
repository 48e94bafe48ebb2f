// CUDA 2-D pooling: the twins of kernels/cpu/pooling.h (max with indices, average,
// adaptive average) with the same window rules, results and index conventions.
//
// Invariants:
// - Same layouts and contract as the CPU kernels: x / dx dense (P, H, W), y / dy /
//   indices dense (P, Ho, Wo); sizes validated by the op; outputs overwritten.
// - Max: taps visited in the window's row-major order, a tap replaces the running
//   maximum when it is larger or NaN (so NaN propagates, ties keep the first maximum);
//   indices are flat h * W + w. cuDNN has no indices, no dilation and no ceil mode, so
//   max pooling is ours throughout.
// - Average forward runs on cuDNN (CUDNN_POOLING_AVERAGE_COUNT_{IN,EX}CLUDE_PADDING)
//   whenever that is exactly the CPU's rule: every window lies inside the padded input
//   (the floor-mode output size) and the divisor is the window area (count_include_pad,
//   a divisor_override then scales the result) or the in-input count (no override).
//   Other cases, and data cuDNN refuses, run our kernel.
// - Backward kernels gather: each input element adds the shares of the outputs whose
//   window holds it (max: whose index names it), in output order, in acc_t<T>. No
//   atomics; results are bitwise reproducible.
// - Pointers are device pointers of the current device; nothing synchronizes.
#pragma once

#include <cstdint>

#include "kernels/cpu/pooling.h"

// cudaStream_t without <cuda_runtime.h>, so plain C++ (the engine ops) can include this.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace zae::kernels::cuda {

using kernels::cpu::PoolShape;

/// y (P, Ho, Wo) = window max of x (P, H, W); indices (P, Ho, Wo) = flat argmax h * W + w.
template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& s, cudaStream_t stream);

/// dx (P, H, W) = sum of dy (P, Ho, Wo) over the outputs whose index is that element.
template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& s, cudaStream_t stream);

/// y (P, Ho, Wo) = window sum of x / divisor (dilation must be 1). divisor_override 0 = none.
template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool count_include_pad, int64_t divisor_override,
                        cudaStream_t stream);

/// dx (P, H, W) = sum of dy / divisor over the windows holding each element.
template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool count_include_pad, int64_t divisor_override,
                         cudaStream_t stream);

/// y (P, Ho, Wo) = mean of x (P, H, W) over the adaptive bins.
template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w, cudaStream_t stream);

/// dx (P, H, W) = sum of dy / bin area over the bins holding each element.
template <class T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w, cudaStream_t stream);

}  // namespace zae::kernels::cuda
