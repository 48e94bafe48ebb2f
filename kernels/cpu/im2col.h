// CPU 2-D convolution as im2col + GEMM (kernels/cpu/gemm.h): the column transforms
// and the forward/backward drivers that the conv2d op (engine/ops/conv.cpp) calls.
//
// Invariants:
// - Every tensor is dense row-major: x (N, C, H, W), weight (O, C/G, kH, kW),
//   bias (O), y (N, O, Ho, Wo); gradients have the shapes of what they differentiate.
//   C and O are divisible by the group count G. Sizes are validated by the op.
// - The column matrix of one image is (C * kH * kW, Ho * Wo): row (c, ki, kj) holds
//   x[c, oh * sh - ph + ki * dh, ow * sw - pw + kj * dw] over (oh, ow), zero where that
//   falls into the padding. Valid ranges are computed once per row, so the inner loops
//   carry no division and no bounds test (a memcpy when the stride is 1).
// - Drivers split the batch into one contiguous image range per thread and run each
//   range's GEMMs single-threaded there (OpenBLAS is held at one thread for the span of
//   the parallel region and restored after); with one range (N == 1 or one thread) the
//   GEMM itself runs multi-threaded. Images with few output positions are packed side
//   by side into one wider GEMM. The 1x1/stride-1/no-padding case skips im2col.
// - Backward: dx = col2im(W^T dy); dW = sum_n dy_n cols_n^T; db = sum_{n, oh, ow} dy.
//   dW and db are reduced per thread range and then summed in range order, so results
//   are bitwise reproducible for a fixed thread count. Outputs are overwritten.
// - Defined for T = float and double (16-bit dtypes are widened by the op).
#pragma once

#include <cstdint>

namespace zae::kernels::cpu {

/// Geometry of a 2-D convolution over one image (all values already validated).
struct ConvShape {
  int64_t channels = 0, height = 0, width = 0;  ///< input (C, H, W) of one image
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t out_h = 0, out_w = 0;  ///< output (Ho, Wo)

  int64_t out_plane() const { return out_h * out_w; }
  int64_t in_plane() const { return height * width; }
  /// Rows of one image's column matrix: C * kH * kW.
  int64_t col_rows() const { return channels * kernel_h * kernel_w; }
  /// True when the column matrix is the image itself (1x1 kernel, stride 1, no padding).
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }
};

/// cols (C*kH*kW, Ho*Wo), row stride ld >= Ho*Wo  <-  x (C, H, W). Every element of the
/// (rows, Ho*Wo) block is written.
template <class T>
void im2col(const T* x, const ConvShape& s, T* cols, int64_t ld);

/// x (C, H, W) += col2im(cols (C*kH*kW, Ho*Wo), row stride ld): the adjoint of im2col.
/// cols is a workspace: its entries at padding positions (those im2col writes as 0) may
/// be overwritten with 0.
template <class T>
void col2im_add(T* cols, int64_t ld, const ConvShape& s, T* x);

/// y (N, O, Ho, Wo) = conv2d(x (N, C, H, W), w (O, C/G, kH, kW)) + bias (O, or null).
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, int64_t batch, int64_t out_channels,
                    int64_t groups, const ConvShape& s);

/// Gradients of conv2d from dy (N, O, Ho, Wo). dx (N, C, H, W), dw (O, C/G, kH, kW) and
/// db (O) are each optional (null: not computed); x is read only for dw, w only for dx.
template <class T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t batch,
                     int64_t out_channels, int64_t groups, const ConvShape& s);

}  // namespace zae::kernels::cpu
