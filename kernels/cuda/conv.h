// CUDA 2-D convolution: the twin of kernels/cpu/im2col.h's conv2d_forward / backward,
// run through cuDNN's legacy convolution API (engine/cuda/cudnn.h) plus two small
// kernels of ours for the bias (add, and the per-channel sum of dy).
//
// Invariants:
// - Every tensor is dense row-major, as on the CPU: x (N, C, H, W), w (O, C/G, kH, kW),
//   bias (O), y (N, O, Ho, Wo); gradients have the shapes of what they differentiate.
//   Sizes are validated by the op (engine/ops/conv.cpp). Pointers are device pointers
//   of the current device, 16-byte aligned (the op copies operands that are not).
// - Outputs are overwritten, never read (cuDNN runs with beta = 0 on the first pass).
// - Accumulation: float32 in float32 (TF32 tensor cores only with allow_tf32), float64
//   in float64, bfloat16 / float16 in float32. Bias sums accumulate in double in a fixed
//   order (bitwise reproducible). cuDNN's algorithm is the fastest its search finds for
//   the problem, restricted to deterministic ones with `deterministic`.
// - Batches whose x or y has more than INT_MAX elements run in chunks of images.
// - `stream` must be the calling thread's current stream of the current device
//   (workspaces come from the caching allocator for that stream). Nothing synchronizes,
//   except the first call for a new problem shape, which times cuDNN's algorithms.
#pragma once

#include <cstdint>

#include "kernels/cpu/im2col.h"

// cudaStream_t without <cuda_runtime.h>, so plain C++ (the engine ops) can include this.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace zae::kernels::cuda {

using kernels::cpu::ConvShape;

/// What the algorithm choice may use.
struct ConvMath {
  bool allow_tf32 = false;     ///< float32 may run on TF32 tensor cores
  bool deterministic = false;  ///< only bitwise-reproducible cuDNN algorithms
};

/// y (N, O, Ho, Wo) = conv2d(x (N, C, H, W), w (O, C/G, kH, kW)) + bias (O, or null).
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, int64_t batch, int64_t out_channels, int64_t groups,
                    const ConvShape& s, ConvMath math, cudaStream_t stream);

/// dx (N, C, H, W) = the adjoint of conv2d in x, applied to dy (N, O, Ho, Wo).
template <class T>
void conv2d_backward_data(const T* dy, const T* w, T* dx, int64_t batch, int64_t out_channels, int64_t groups,
                          const ConvShape& s, ConvMath math, cudaStream_t stream);

/// dw (O, C/G, kH, kW) = sum over images of dy correlated with x.
template <class T>
void conv2d_backward_filter(const T* dy, const T* x, T* dw, int64_t batch, int64_t out_channels, int64_t groups,
                            const ConvShape& s, ConvMath math, cudaStream_t stream);

/// db (O) = sum over (n, oh, ow) of dy (N, O, Ho * Wo).
template <class T>
void conv2d_backward_bias(const T* dy, T* db, int64_t batch, int64_t out_channels, int64_t out_plane,
                          cudaStream_t stream);

}  // namespace zae::kernels::cuda
