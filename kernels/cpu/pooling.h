// CPU 2-D pooling kernels (max, average, adaptive average) and their backward passes,
// with PyTorch's window rules. The ops in engine/ops/pooling.cpp validate and call them.
//
// Invariants:
// - x / dx are dense (P, H, W) and y / dy / indices dense (P, Ho, Wo), P = N * C planes;
//   planes are independent and processed in parallel. Sizes are validated by the op.
// - Max window of output (oh, ow): rows oh * sh - ph + i * dh (i < kH) clipped to
//   [0, H), likewise columns; the first element of the clipped window is the initial
//   argmax, a strictly larger value or a NaN replaces it (NaN propagates).
// - Average window: [oh * sh - ph, + kH) clipped to [0, H + ph) gives the padded area,
//   then to [0, H) the summed area; divisor = divisor_override (when > 0), else the
//   padded area (count_include_pad) or the summed area. An empty window gives 0.
// - Adaptive bins: [floor(i * H / Ho), ceil((i + 1) * H / Ho)), integer arithmetic.
// - Backward kernels overwrite dx (zero, then accumulate each output's share);
//   accumulation is in acc_t<T>. Defined for float, double, Half, BFloat16.
#pragma once

#include <cstdint>

namespace zae::kernels::cpu {

/// Geometry of a max or average pooling over P planes.
struct PoolShape {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};

/// y (P, Ho, Wo) = window max of x (P, H, W); indices (P, Ho, Wo) = flat argmax h * W + w.
template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& s);

/// dx (P, H, W) = scatter-add of dy (P, Ho, Wo) at indices.
template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& s);

/// y (P, Ho, Wo) = window sum of x / divisor (dilation must be 1). divisor_override 0 = none.
template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool count_include_pad, int64_t divisor_override);

/// dx (P, H, W) = every window's dy / divisor spread over its in-input elements.
template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool count_include_pad, int64_t divisor_override);

/// y (P, Ho, Wo) = mean of x (P, H, W) over adaptive bins.
template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w);

/// dx (P, H, W) = every bin's dy / bin area spread over the bin.
template <class T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w);

}  // namespace zae::kernels::cpu
