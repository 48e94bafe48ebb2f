// CUDA conv2d forward / backward (contract in conv.h): cuDNN for the three convolution
// directions, with descriptors built per call and the algorithm from the process-wide
// cache in engine/cuda/cudnn.h; our kernels for the bias add and the bias gradient.
#include "kernels/cuda/conv.h"

#include <algorithm>
#include <climits>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "engine/cuda/cudnn.h"
#include "engine/cuda/stream.h"
#include "kernels/cuda/dnn_common.cuh"

namespace zae::kernels::cuda {

namespace {

using zae::cuda::ConvAlgo;
using zae::cuda::ConvDirection;
using zae::cuda::ConvKey;
using zae::cuda::ConvOperands;
using zae::cuda::Scratch;

constexpr int kBiasThreads = 256;

/// y[n, c, s] += bias[c] over dense (N, C, S), `total` = N * C * S elements.
template <class T>
__global__ void __launch_bounds__(kBiasThreads)
    bias_add_kernel(T* __restrict__ y, const T* __restrict__ bias, int64_t C, int64_t S, int64_t total) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t c = (i / S) % C;
    y[i] = dnn::store<T>(dnn::load(y[i]) + dnn::load(bias[c]));
  }
}

template <class T>
constexpr cudnnDataType_t data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDNN_DATA_FLOAT;
  if constexpr (std::is_same_v<T, double>) return CUDNN_DATA_DOUBLE;
  if constexpr (std::is_same_v<T, Half>) return CUDNN_DATA_HALF;
  if constexpr (std::is_same_v<T, BFloat16>) return CUDNN_DATA_BFLOAT16;
}

template <class T>
constexpr cudnnDataType_t compute_type() {
  return std::is_same_v<T, double> ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

// The math type the search starts from: float32 FMA unless TF32 is allowed; tensor
// cores for the 16-bit types (float accumulation); float64 as cuDNN sees fit.
template <class T>
cudnnMathType_t initial_math(const ConvMath& math) {
  if constexpr (std::is_same_v<T, float>) return math.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  if constexpr (std::is_same_v<T, double>) return CUDNN_DEFAULT_MATH;
  return CUDNN_TENSOR_OP_MATH;
}

// alpha = 1 and beta in {0, 1} in the scaling type cuDNN expects (double for float64).
template <class T>
struct Blend {
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
  S one = S(1);
  S zero = S(0);
  const void* beta(bool accumulate) const { return accumulate ? &one : &zero; }
};

// Descriptors and the cache key of one (chunk of a) convolution.
struct Problem {
  zae::cuda::TensorDescriptor x, y;
  zae::cuda::FilterDescriptor w;
  zae::cuda::ConvolutionDescriptor conv;
  ConvKey key;
};

template <class T>
void describe(Problem& p, ConvDirection dir, int64_t n, int64_t out_channels, int64_t groups, const ConvShape& s,
              const ConvMath& math) {
  const int64_t C = s.channels, H = s.height, W = s.width, O = out_channels, Ho = s.out_h, Wo = s.out_w;
  ConvKey& k = p.key;
  k.device = zae::cuda::current_device();
  k.direction = dir;
  k.data_type = data_type<T>();
  k.compute_type = compute_type<T>();
  k.allow_tf32 = std::is_same_v<T, float> && math.allow_tf32;
  k.deterministic = math.deterministic;
  k.x_dims = {n, C, H, W};
  k.x_strides = {C * H * W, H * W, W, 1};
  k.w_dims = {O, C / groups, s.kernel_h, s.kernel_w};
  k.y_dims = {n, O, Ho, Wo};
  k.y_strides = {O * Ho * Wo, Ho * Wo, Wo, 1};
  k.padding = {s.pad_h, s.pad_w};
  k.stride = {s.stride_h, s.stride_w};
  k.dilation = {s.dilation_h, s.dilation_w};
  k.groups = groups;
  p.x.set(data_type<T>(), k.x_dims, k.x_strides);
  p.y.set(data_type<T>(), k.y_dims, k.y_strides);
  p.w.set(data_type<T>(), k.w_dims[0], k.w_dims[1], k.w_dims[2], k.w_dims[3]);
  p.conv.set(k.padding, k.stride, k.dilation, groups, compute_type<T>(), initial_math<T>(math));
  int dims[4] = {};
  CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(p.conv.get(), p.x.get(), p.w.get(), 4, dims));
  ZAE_CHECK(dims[0] == n && dims[1] == O && dims[2] == Ho && dims[3] == Wo, "conv2d (cuda): cuDNN computes output (",
            dims[0], ", ", dims[1], ", ", dims[2], ", ", dims[3], ") but the op expects (", n, ", ", O, ", ", Ho, ", ",
            Wo, ")");
}

// Images per chunk, so that no chunk's x or y holds more than INT_MAX elements.
int64_t images_per_chunk(int64_t batch, int64_t in_image, int64_t out_image, const char* what) {
  const int64_t per = std::max<int64_t>({in_image, out_image, 1});
  ZAE_CHECK(per <= INT_MAX, what, " (cuda): one image has ", per, " elements, more than cuDNN handles (", INT_MAX,
            ")");
  return std::max<int64_t>(1, std::min<int64_t>(batch, INT_MAX / per));
}

// The algorithm for `p`, with the descriptor switched to its math type, and a workspace.
template <class SizeFn>
ConvAlgo prepare(Problem& p, const ConvOperands& ops, SizeFn workspace_size, Scratch& ws) {
  const ConvAlgo a = zae::cuda::conv_algorithm(p.key, ops);
  p.conv.set_math_type(a.math_type);
  size_t bytes = 0;
  CUDNN_CHECK(workspace_size(a, &bytes));
  ws = Scratch(std::max(bytes, a.workspace_bytes));
  return a;
}

void zero(void* p, size_t bytes, cudaStream_t stream) {
  if (bytes > 0) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
}

int64_t grid_for(int64_t total, int threads) {
  return std::clamp<int64_t>((total + threads - 1) / threads, 1, int64_t{1} << 20);
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, int64_t batch, int64_t out_channels, int64_t groups,
                    const ConvShape& s, ConvMath math, cudaStream_t stream) {
  const int64_t out_image = out_channels * s.out_plane(), in_image = s.channels * s.in_plane();
  if (batch == 0 || out_image == 0) return;
  if (s.channels == 0) {
    zero(y, static_cast<size_t>(batch * out_image) * sizeof(T), stream);  // an empty sum, then the bias
  } else {
    const Blend<T> blend;
    cudnnHandle_t h = zae::cuda::cudnn_handle(stream);
    const int64_t chunk = images_per_chunk(batch, in_image, out_image, "conv2d");
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
      const int64_t n = std::min(chunk, batch - n0);
      const T* xc = x + n0 * in_image;  // (n, C, H, W)
      T* yc = y + n0 * out_image;       // (n, O, Ho, Wo)
      Problem p;
      describe<T>(p, ConvDirection::forward, n, out_channels, groups, s, math);
      const ConvOperands ops{h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), const_cast<T*>(xc), const_cast<T*>(w),
                             yc};
      Scratch ws;
      const ConvAlgo a = prepare(
          p, ops,
          [&](const ConvAlgo& c, size_t* b) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                           static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), b);
          },
          ws);
      CUDNN_CHECK(cudnnConvolutionForward(h, &blend.one, p.x.get(), xc, p.w.get(), w, p.conv.get(),
                                          static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws.get(), ws.bytes(),
                                          &blend.zero, p.y.get(), yc));
    }
  }
  if (bias != nullptr) {
    const int64_t total = batch * out_image;
    bias_add_kernel<T><<<static_cast<unsigned>(grid_for(total, kBiasThreads)), kBiasThreads, 0, stream>>>(
        y, bias, out_channels, s.out_plane(), total);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void conv2d_backward_data(const T* dy, const T* w, T* dx, int64_t batch, int64_t out_channels, int64_t groups,
                          const ConvShape& s, ConvMath math, cudaStream_t stream) {
  const int64_t out_image = out_channels * s.out_plane(), in_image = s.channels * s.in_plane();
  if (batch == 0 || in_image == 0) return;
  if (out_channels == 0) {  // no output channel reads x
    zero(dx, static_cast<size_t>(batch * in_image) * sizeof(T), stream);
    return;
  }
  const Blend<T> blend;
  cudnnHandle_t h = zae::cuda::cudnn_handle(stream);
  const int64_t chunk = images_per_chunk(batch, in_image, out_image, "conv2d backward");
  for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
    const int64_t n = std::min(chunk, batch - n0);
    const T* dyc = dy + n0 * out_image;  // (n, O, Ho, Wo)
    T* dxc = dx + n0 * in_image;         // (n, C, H, W)
    Problem p;
    describe<T>(p, ConvDirection::backward_data, n, out_channels, groups, s, math);
    const ConvOperands ops{h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), dxc, const_cast<T*>(w),
                           const_cast<T*>(dyc)};
    Scratch ws;
    const ConvAlgo a = prepare(
        p, ops,
        [&](const ConvAlgo& c, size_t* b) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), b);
        },
        ws);
    CUDNN_CHECK(cudnnConvolutionBackwardData(h, &blend.one, p.w.get(), w, p.y.get(), dyc, p.conv.get(),
                                             static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), ws.get(),
                                             ws.bytes(), &blend.zero, p.x.get(), dxc));
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void conv2d_backward_filter(const T* dy, const T* x, T* dw, int64_t batch, int64_t out_channels, int64_t groups,
                            const ConvShape& s, ConvMath math, cudaStream_t stream) {
  const int64_t out_image = out_channels * s.out_plane(), in_image = s.channels * s.in_plane();
  const int64_t w_numel = out_channels * (s.channels / groups) * s.kernel_h * s.kernel_w;
  if (w_numel == 0) return;
  if (batch == 0) {  // an empty sum
    zero(dw, static_cast<size_t>(w_numel) * sizeof(T), stream);
    return;
  }
  const Blend<T> blend;
  cudnnHandle_t h = zae::cuda::cudnn_handle(stream);
  const int64_t chunk = images_per_chunk(batch, in_image, out_image, "conv2d backward");
  for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
    const int64_t n = std::min(chunk, batch - n0);
    const bool accumulate = n0 > 0;  // later chunks add to the earlier chunks' sum
    const T* xc = x + n0 * in_image;     // (n, C, H, W)
    const T* dyc = dy + n0 * out_image;  // (n, O, Ho, Wo)
    Problem p;
    describe<T>(p, ConvDirection::backward_filter, n, out_channels, groups, s, math);
    // A first-time algorithm search writes its output: never into a partial sum.
    Scratch search_target(accumulate ? static_cast<size_t>(w_numel) * sizeof(T) : 0);
    const ConvOperands ops{h,
                           p.x.get(),
                           p.w.get(),
                           p.conv.get(),
                           p.y.get(),
                           const_cast<T*>(xc),
                           accumulate ? search_target.get() : static_cast<void*>(dw),
                           const_cast<T*>(dyc)};
    Scratch ws;
    const ConvAlgo a = prepare(
        p, ops,
        [&](const ConvAlgo& c, size_t* b) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(
              h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo),
              b);
        },
        ws);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &blend.one, p.x.get(), xc, p.y.get(), dyc, p.conv.get(),
                                               static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo), ws.get(),
                                               ws.bytes(), blend.beta(accumulate), p.w.get(), dw));
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void conv2d_backward_bias(const T* dy, T* db, int64_t batch, int64_t out_channels, int64_t out_plane,
                          cudaStream_t stream) {
  if (out_channels == 0) return;
  ZAE_CHECK(out_channels <= INT_MAX, "conv2d backward (cuda): ", out_channels, " output channels exceed a grid");
  dnn::channel_grad_sums_kernel<T><<<static_cast<unsigned>(out_channels), dnn::kBlock, 0, stream>>>(
      dy, nullptr, nullptr, nullptr, nullptr, db, batch, out_channels, out_plane);
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_CONV(T)                                                                                           \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, const ConvShape&,  \
                                  ConvMath, cudaStream_t);                                                         \
  template void conv2d_backward_data<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, const ConvShape&,      \
                                        ConvMath, cudaStream_t);                                                   \
  template void conv2d_backward_filter<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, const ConvShape&,    \
                                          ConvMath, cudaStream_t);                                                 \
  template void conv2d_backward_bias<T>(const T*, T*, int64_t, int64_t, int64_t, cudaStream_t);
ZAE_CUDA_CONV(float)
ZAE_CUDA_CONV(double)
ZAE_CUDA_CONV(Half)
ZAE_CUDA_CONV(BFloat16)
#undef ZAE_CUDA_CONV

}  // namespace zae::kernels::cuda
