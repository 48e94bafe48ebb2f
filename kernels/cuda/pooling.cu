// CUDA pooling kernels (contract in pooling.h). One thread per output element for the
// forward kernels and one per input element for the (gathering) backward kernels, in
// grid-stride loops with 64-bit indices; average forward goes to cuDNN when its rule is
// exactly the CPU's.
#include "kernels/cuda/pooling.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "engine/cuda/cudnn.h"
#include "kernels/cuda/dnn_common.cuh"

namespace zae::kernels::cuda {

namespace {

using dnn::load;
using dnn::store;

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t ceil_div_dev(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T>
__global__ void __launch_bounds__(kThreads)
    max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ indices, PoolShape s,
                            int64_t total) {
  using Acc = acc_t<T>;
  const int64_t H = s.in_h, W = s.in_w, Ho = s.out_h, Wo = s.out_w;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += step) {
    const int64_t ow = o % Wo, oh = (o / Wo) % Ho, p = o / (Wo * Ho);
    const T* xp = x + p * H * W;  // (H, W)
    const int64_t h0 = oh * s.stride_h - s.pad_h, w0 = ow * s.stride_w - s.pad_w;
    // The first tap inside the input is the initial argmax (as on the CPU).
    const int64_t hb = h0 >= 0 ? h0 : h0 + ceil_div_dev(-h0, s.dilation_h) * s.dilation_h;
    const int64_t wb = w0 >= 0 ? w0 : w0 + ceil_div_dev(-w0, s.dilation_w) * s.dilation_w;
    Acc best = -static_cast<Acc>(INFINITY);
    T best_raw = store<T>(best);
    int64_t arg = hb * W + wb;
    for (int64_t i = 0; i < s.kernel_h; ++i) {
      const int64_t ih = h0 + i * s.dilation_h;
      if (ih < 0 || ih >= H) continue;
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const int64_t iw = w0 + j * s.dilation_w;
        if (iw < 0 || iw >= W) continue;
        const T raw = xp[ih * W + iw];
        const Acc v = load(raw);
        if (v > best || v != v) {  // larger, or NaN (propagates)
          best = v;
          best_raw = raw;
          arg = ih * W + iw;
        }
      }
    }
    y[o] = best_raw;
    indices[o] = arg;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    max_pool_backward_kernel(const T* __restrict__ dy, const int64_t* __restrict__ indices, T* __restrict__ dx,
                             PoolShape s, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t H = s.in_h, W = s.in_w, Ho = s.out_h, Wo = s.out_w;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t iw = e % W, ih = (e / W) % H, p = e / (W * H);
    const int64_t flat = ih * W + iw;
    const int64_t* ip = indices + p * Ho * Wo;  // (Ho, Wo)
    const T* gp = dy + p * Ho * Wo;             // (Ho, Wo)
    Acc acc = Acc(0);
    // Outputs whose tap (a, b) is this element, in increasing (oh, ow) order.
    for (int64_t a = s.kernel_h - 1; a >= 0; --a) {
      const int64_t th = ih + s.pad_h - a * s.dilation_h;
      if (th < 0 || th % s.stride_h != 0 || th / s.stride_h >= Ho) continue;
      const int64_t oh = th / s.stride_h;
      for (int64_t b = s.kernel_w - 1; b >= 0; --b) {
        const int64_t tw = iw + s.pad_w - b * s.dilation_w;
        if (tw < 0 || tw % s.stride_w != 0 || tw / s.stride_w >= Wo) continue;
        const int64_t o = oh * Wo + tw / s.stride_w;
        if (ip[o] == flat) acc += load(gp[o]);
      }
    }
    dx[e] = store<T>(acc);
  }
}

// One window of average pooling along a dim: [start, start + kernel) clipped to
// [0, in + pad) gives `padded`, then to [0, in) gives [begin, end).
struct AvgSpan {
  int64_t begin, end, padded;
};

__device__ __forceinline__ AvgSpan avg_span(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t start = o * stride - pad;
  const int64_t stop = min(start + kernel, in + pad);
  return AvgSpan{max(start, int64_t{0}), min(stop, in), stop - start};
}

__device__ __forceinline__ int64_t avg_divisor(const AvgSpan& h, const AvgSpan& w, bool count_include_pad,
                                               int64_t divisor_override) {
  if (divisor_override > 0) return divisor_override;
  if (count_include_pad) return h.padded * w.padded;
  return (h.end - h.begin) * (w.end - w.begin);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolShape s, bool count_include_pad,
                            int64_t divisor_override, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t H = s.in_h, W = s.in_w, Ho = s.out_h, Wo = s.out_w;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += step) {
    const int64_t ow = o % Wo, oh = (o / Wo) % Ho, p = o / (Wo * Ho);
    const AvgSpan h = avg_span(oh, H, s.kernel_h, s.stride_h, s.pad_h);
    const AvgSpan w = avg_span(ow, W, s.kernel_w, s.stride_w, s.pad_w);
    if (h.begin >= h.end || w.begin >= w.end) {
      y[o] = store<T>(Acc(0));
      continue;
    }
    const T* xp = x + p * H * W;  // (H, W)
    Acc sum = Acc(0);
    for (int64_t ih = h.begin; ih < h.end; ++ih)
      for (int64_t iw = w.begin; iw < w.end; ++iw) sum += load(xp[ih * W + iw]);
    y[o] = store<T>(sum / static_cast<Acc>(avg_divisor(h, w, count_include_pad, divisor_override)));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    avg_pool_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, PoolShape s, bool count_include_pad,
                             int64_t divisor_override, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t H = s.in_h, W = s.in_w, Ho = s.out_h, Wo = s.out_w;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t iw = e % W, ih = (e / W) % H, p = e / (W * H);
    const T* gp = dy + p * Ho * Wo;  // (Ho, Wo)
    // Windows [o * stride - pad, + kernel) holding the element: o in [lo, hi].
    const int64_t ah = ih + s.pad_h - s.kernel_h, aw = iw + s.pad_w - s.kernel_w;
    const int64_t oh_lo = ah < 0 ? 0 : ah / s.stride_h + 1, ow_lo = aw < 0 ? 0 : aw / s.stride_w + 1;
    const int64_t oh_hi = min((ih + s.pad_h) / s.stride_h, Ho - 1), ow_hi = min((iw + s.pad_w) / s.stride_w, Wo - 1);
    Acc acc = Acc(0);
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      const AvgSpan h = avg_span(oh, H, s.kernel_h, s.stride_h, s.pad_h);
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const AvgSpan w = avg_span(ow, W, s.kernel_w, s.stride_w, s.pad_w);
        acc += load(gp[oh * Wo + ow]) / static_cast<Acc>(avg_divisor(h, w, count_include_pad, divisor_override));
      }
    }
    dx[e] = store<T>(acc);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    adaptive_avg_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t H, int64_t W, int64_t Ho,
                                int64_t Wo, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += step) {
    const int64_t ow = o % Wo, oh = (o / Wo) % Ho, p = o / (Wo * Ho);
    const int64_t hb = oh * H / Ho, he = ceil_div_dev((oh + 1) * H, Ho);
    const int64_t wb = ow * W / Wo, we = ceil_div_dev((ow + 1) * W, Wo);
    const T* xp = x + p * H * W;  // (H, W)
    Acc sum = Acc(0);
    for (int64_t ih = hb; ih < he; ++ih)
      for (int64_t iw = wb; iw < we; ++iw) sum += load(xp[ih * W + iw]);
    y[o] = store<T>(sum / static_cast<Acc>((he - hb) * (we - wb)));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    adaptive_avg_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t H, int64_t W, int64_t Ho,
                                 int64_t Wo, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t iw = e % W, ih = (e / W) % H, p = e / (W * H);
    const T* gp = dy + p * Ho * Wo;  // (Ho, Wo)
    // Bins holding ih lie in [floor(ih * Ho / H), ceil((ih + 1) * Ho / H)); each is checked.
    const int64_t oh_lo = ih * Ho / H, oh_hi = min(ceil_div_dev((ih + 1) * Ho, H), Ho);
    const int64_t ow_lo = iw * Wo / W, ow_hi = min(ceil_div_dev((iw + 1) * Wo, W), Wo);
    Acc acc = Acc(0);
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      const int64_t hb = oh * H / Ho, he = ceil_div_dev((oh + 1) * H, Ho);
      if (ih < hb || ih >= he) continue;
      for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
        const int64_t wb = ow * W / Wo, we = ceil_div_dev((ow + 1) * W, Wo);
        if (iw < wb || iw >= we) continue;
        acc += load(gp[oh * Wo + ow]) / static_cast<Acc>((he - hb) * (we - wb));
      }
    }
    dx[e] = store<T>(acc);
  }
}

unsigned grid_for(int64_t total) {
  return static_cast<unsigned>(std::clamp<int64_t>((total + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

template <class T>
constexpr cudnnDataType_t pool_data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDNN_DATA_FLOAT;
  if constexpr (std::is_same_v<T, double>) return CUDNN_DATA_DOUBLE;
  if constexpr (std::is_same_v<T, Half>) return CUDNN_DATA_HALF;
  if constexpr (std::is_same_v<T, BFloat16>) return CUDNN_DATA_BFLOAT16;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Average pooling forward on cuDNN when its rule is exactly the CPU's (see pooling.h);
// false, having queued nothing, otherwise.
template <class T>
bool avg_pool_forward_cudnn(const T* x, T* y, const PoolShape& s, bool count_include_pad, int64_t divisor_override,
                            cudaStream_t stream) {
  if (s.dilation_h != 1 || s.dilation_w != 1) return false;
  if (divisor_override > 0 && !count_include_pad) return false;  // cuDNN divides each window by its own count
  const int64_t padded_h = s.in_h + 2 * s.pad_h, padded_w = s.in_w + 2 * s.pad_w;
  if (padded_h < s.kernel_h || padded_w < s.kernel_w) return false;
  // Windows inside the padded input: exactly the floor-mode outputs.
  if (s.out_h != (padded_h - s.kernel_h) / s.stride_h + 1 || s.out_w != (padded_w - s.kernel_w) / s.stride_w + 1)
    return false;
  if (s.planes > INT_MAX || s.planes * s.in_h * s.in_w > INT_MAX || !aligned16(x) || !aligned16(y)) return false;
  zae::cuda::TensorDescriptor xd, yd;
  xd.set(pool_data_type<T>(), s.planes, 1, s.in_h, s.in_w);
  yd.set(pool_data_type<T>(), s.planes, 1, s.out_h, s.out_w);
  zae::cuda::PoolingDescriptor pool;
  const cudnnPoolingMode_t mode =
      count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  pool.set(mode, {s.kernel_h, s.kernel_w}, {s.pad_h, s.pad_w}, {s.stride_h, s.stride_w});
  int dims[4] = {};
  CUDNN_CHECK(cudnnGetPoolingNdForwardOutputDim(pool.get(), xd.get(), 4, dims));
  if (dims[0] != s.planes || dims[1] != 1 || dims[2] != s.out_h || dims[3] != s.out_w) return false;
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
  // cuDNN divides by the window area; an override divisor d scales that by area / d.
  const S alpha = divisor_override > 0 ? static_cast<S>(s.kernel_h * s.kernel_w) / static_cast<S>(divisor_override)
                                       : S(1);
  const S beta = S(0);
  const cudnnStatus_t st =
      cudnnPoolingForward(zae::cuda::cudnn_handle(stream), pool.get(), &alpha, xd.get(), x, &beta, yd.get(), y);
  if (st == CUDNN_STATUS_NOT_SUPPORTED) return false;
  CUDNN_CHECK(st);
  return true;
}

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& s, cudaStream_t stream) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  max_pool_forward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(x, y, indices, s, total);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& s, cudaStream_t stream) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  if (total == 0) return;
  max_pool_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(dy, indices, dx, s, total);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool count_include_pad, int64_t divisor_override,
                        cudaStream_t stream) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  if (avg_pool_forward_cudnn(x, y, s, count_include_pad, divisor_override, stream)) return;
  avg_pool_forward_kernel<T>
      <<<grid_for(total), kThreads, 0, stream>>>(x, y, s, count_include_pad, divisor_override, total);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool count_include_pad, int64_t divisor_override,
                         cudaStream_t stream) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  if (total == 0) return;
  avg_pool_backward_kernel<T>
      <<<grid_for(total), kThreads, 0, stream>>>(dy, dx, s, count_include_pad, divisor_override, total);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w, cudaStream_t stream) {
  const int64_t total = planes * out_h * out_w;
  if (total == 0) return;
  adaptive_avg_forward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(x, y, in_h, in_w, out_h, out_w, total);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w, cudaStream_t stream) {
  const int64_t total = planes * in_h * in_w;
  if (total == 0) return;
  adaptive_avg_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(dy, dx, in_h, in_w, out_h, out_w, total);
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_POOLING(T)                                                                                         \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const PoolShape&, cudaStream_t);                      \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const PoolShape&, cudaStream_t);               \
  template void avg_pool2d_forward<T>(const T*, T*, const PoolShape&, bool, int64_t, cudaStream_t);                 \
  template void avg_pool2d_backward<T>(const T*, T*, const PoolShape&, bool, int64_t, cudaStream_t);                \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t,           \
                                               cudaStream_t);                                                       \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t,          \
                                                cudaStream_t);
ZAE_CUDA_POOLING(float)
ZAE_CUDA_POOLING(double)
ZAE_CUDA_POOLING(Half)
ZAE_CUDA_POOLING(BFloat16)
#undef ZAE_CUDA_POOLING

}  // namespace zae::kernels::cuda
