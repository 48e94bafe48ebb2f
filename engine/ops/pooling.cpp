// max_pool2d / avg_pool2d / adaptive_avg_pool2d: validate with PyTorch's rules, run the
// kernels in kernels/cpu/pooling.h over dense (planes, H, W) data, record one node.
//
// Invariants:
// - (C, H, W) inputs are C planes, (N, C, H, W) inputs N * C planes; outputs keep the
//   input's rank. Every error names the op and the values involved.
// - max_pool2d's node saves only the indices; the average pools save nothing.
// - Devices: the CPU kernels (kernels/cpu/pooling.h) and, in a CUDA build, their CUDA
//   twins (kernels/cuda/pooling.h) on the current stream of x's device.
#include "engine/ops/backend.h"
#include "engine/ops/pooling.h"

#include <string>

#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "kernels/cpu/pooling.h"
#include "kernels/cuda/pooling.h"  // declarations only: instantiated (and linked) in CUDA builds

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#endif

namespace zae {

namespace {

using kernels::cpu::PoolShape;

// Runs cpu() for a CPU tensor, or gpu(stream) with `device`'s index current and its
// current stream for a CUDA one (never called, so never instantiated, without CUDA).
template <class Cpu, class Gpu>
void on_device(const Device& device, Cpu&& cpu, [[maybe_unused]] Gpu&& gpu) {
  if (device.is_cpu()) {
    cpu();
    return;
  }
#ifdef ZAE_WITH_CUDA
  cuda::DeviceGuard guard(device.index);
  gpu(cuda::current_stream(device.index));
#endif
}

// Gradient g as a dense tensor of x's dtype, checked against the output shape.
Tensor dense_grad(const char* op, const Tensor& g, const Shape& y_shape, DType dtype, const Device& device) {
  ZAE_CHECK(g.shape() == y_shape, op, " backward: gradient shape ", shape_str(g.shape()),
            " does not match the output shape ", shape_str(y_shape));
  ZAE_CHECK(g.device() == device, op, " backward: gradient is on ", g.device(), " but the input is on ", device);
  if (g.dtype() == dtype) return dense_data(g);
  Tensor out = Tensor::empty(g.shape(), {.dtype = dtype, .device = g.device()});
  copy_into(out, g);
  return out;
}

// Input checks shared by the pools: (C, H, W) or (N, C, H, W), non-empty C/H/W, floating, CPU.
void check_input(const char* op, const Tensor& x) {
  ZAE_CHECK(x.defined(), op, ": undefined input tensor");
  ZAE_CHECK(x.dim() == 3 || x.dim() == 4, op, ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape ",
            shape_str(x.shape()));
  for (int64_t d = x.dim() - 3; d < x.dim(); ++d) {
    ZAE_CHECK(x.size(d) > 0, op, ": input of shape ", shape_str(x.shape()),
              " has an empty channel or spatial dim (only the batch dim may be 0)");
  }
  ZAE_CHECK(is_floating(x.dtype()), op, ": dtype ", x.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
  ZAE_CHECK(has_kernels_for(x.device()), op, ": not implemented for device ", x.device(), " (dtype ", x.dtype(),
            ") in this build");
}

// Validates the window parameters and fills a PoolShape for x (PyTorch's pool2d_shape_check).
PoolShape pool_shape(const char* op, const Tensor& x, IntPair kernel, IntPair stride, IntPair padding,
                     IntPair dilation, bool ceil_mode) {
  check_input(op, x);
  ZAE_CHECK(kernel.h > 0 && kernel.w > 0, op, ": kernel_size must be positive, got ", kernel.tuple_str());
  ZAE_CHECK(stride.h > 0 && stride.w > 0, op, ": stride must be positive, got ", stride.tuple_str());
  ZAE_CHECK(dilation.h > 0 && dilation.w > 0, op, ": dilation must be positive, got ", dilation.tuple_str());
  ZAE_CHECK(padding.h >= 0 && padding.w >= 0, op, ": padding must be non-negative, got ", padding.tuple_str());
  ZAE_CHECK(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2, op, ": padding ", padding.tuple_str(),
            " must be at most half of kernel_size ", kernel.tuple_str());
  PoolShape s;
  s.in_h = x.size(-2);
  s.in_w = x.size(-1);
  s.planes = x.numel() / (s.in_h * s.in_w);
  s.kernel_h = kernel.h;
  s.kernel_w = kernel.w;
  s.stride_h = stride.h;
  s.stride_w = stride.w;
  s.pad_h = padding.h;
  s.pad_w = padding.w;
  s.dilation_h = dilation.h;
  s.dilation_w = dilation.w;
  s.out_h = pooling_output_size(s.in_h, kernel.h, stride.h, padding.h, dilation.h, ceil_mode);
  s.out_w = pooling_output_size(s.in_w, kernel.w, stride.w, padding.w, dilation.w, ceil_mode);
  ZAE_CHECK(s.out_h >= 1 && s.out_w >= 1, op, ": input of shape ", shape_str(x.shape()), " gives output size (",
            s.out_h, ", ", s.out_w, "), which is too small (kernel_size ", kernel.tuple_str(), ", stride ",
            stride.tuple_str(), ", padding ", padding.tuple_str(), ", dilation ", dilation.tuple_str(),
            ", ceil_mode ", ceil_mode ? "true" : "false", ")");
  return s;
}

// x's shape with the last two dims replaced by (out_h, out_w).
Shape pooled_shape(const Tensor& x, int64_t out_h, int64_t out_w) {
  Shape shape = x.shape();
  shape[shape.size() - 2] = out_h;
  shape[shape.size() - 1] = out_w;
  return shape;
}

}  // namespace

int64_t pooling_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                            bool ceil_mode) {
  const int64_t numer = in + 2 * padding - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // Floor division (numer may be negative).
  int64_t out = (numer >= 0 ? numer / stride : -((-numer + stride - 1) / stride)) + 1;
  // The last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * stride >= in + padding) --out;
  return out;
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x_in, IntPair kernel_size,
                                                  std::optional<IntPair> stride, IntPair padding, IntPair dilation,
                                                  bool ceil_mode) {
  const char* op = "max_pool2d";
  const PoolShape s = pool_shape(op, x_in, kernel_size, stride.value_or(kernel_size), padding, dilation, ceil_mode);
  Tensor x = dense_data(x_in);
  const Shape y_shape = pooled_shape(x, s.out_h, s.out_w);
  Tensor y = Tensor::empty(y_shape, {.dtype = x.dtype(), .device = x.device()});
  Tensor indices = Tensor::empty(y_shape, {.dtype = DType::int64, .device = x.device()});
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    on_device(
        x.device(), [&] { kernels::cpu::max_pool2d_forward<T>(x.data<T>(), y.data<T>(), indices.data<int64_t>(), s); },
        [&](auto stream) {
          kernels::cuda::max_pool2d_forward<T>(x.data<T>(), y.data<T>(), indices.data<int64_t>(), s, stream);
        });
  });
  const Shape x_shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  autograd::record("MaxPool2dBackward", {x_in}, y, {indices},
                   [s, x_shape, y_shape, dtype, device](const Tensor& g_in, const autograd::BackwardContext& ctx) {
                     Tensor g = dense_grad("max_pool2d", g_in, y_shape, dtype, device);
                     const Tensor& idx = ctx.saved[0];
                     Tensor dx = Tensor::empty(x_shape, {.dtype = dtype, .device = device});
                     dispatch_floating(dtype, "max_pool2d", [&](auto tag) {
                       using T = typename decltype(tag)::type;
                       on_device(
                           device,
                           [&] {
                             kernels::cpu::max_pool2d_backward<T>(g.data<T>(), idx.data<int64_t>(), dx.data<T>(), s);
                           },
                           [&](auto stream) {
                             kernels::cuda::max_pool2d_backward<T>(g.data<T>(), idx.data<int64_t>(), dx.data<T>(), s,
                                                                   stream);
                           });
                     });
                     return std::vector<Tensor>{dx};
                   });
  return {y, indices};
}

Tensor max_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride, IntPair padding,
                  IntPair dilation, bool ceil_mode) {
  return max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode).first;
}

Tensor avg_pool2d(const Tensor& x_in, IntPair kernel_size, std::optional<IntPair> stride, IntPair padding,
                  bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  const PoolShape s = pool_shape(op, x_in, kernel_size, stride.value_or(kernel_size), padding, 1, ceil_mode);
  ZAE_CHECK(!divisor_override.has_value() || *divisor_override != 0, op, ": divisor_override must be non-zero");
  ZAE_CHECK(!divisor_override.has_value() || *divisor_override > 0, op, ": divisor_override must be positive, got ",
            *divisor_override);
  const int64_t divisor = divisor_override.value_or(0);
  Tensor x = dense_data(x_in);
  const Shape y_shape = pooled_shape(x, s.out_h, s.out_w);
  Tensor y = Tensor::empty(y_shape, {.dtype = x.dtype(), .device = x.device()});
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    on_device(
        x.device(),
        [&] { kernels::cpu::avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), s, count_include_pad, divisor); },
        [&](auto stream) {
          kernels::cuda::avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), s, count_include_pad, divisor, stream);
        });
  });
  const Shape x_shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  autograd::record(
      "AvgPool2dBackward", {x_in}, y, {},
      [s, x_shape, y_shape, dtype, device, count_include_pad, divisor](const Tensor& g_in,
                                                                       const autograd::BackwardContext&) {
        Tensor g = dense_grad("avg_pool2d", g_in, y_shape, dtype, device);
        Tensor dx = Tensor::empty(x_shape, {.dtype = dtype, .device = device});
        dispatch_floating(dtype, "avg_pool2d", [&](auto tag) {
          using T = typename decltype(tag)::type;
          on_device(
              device,
              [&] { kernels::cpu::avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), s, count_include_pad, divisor); },
              [&](auto stream) {
                kernels::cuda::avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), s, count_include_pad, divisor,
                                                      stream);
              });
        });
        return std::vector<Tensor>{dx};
      });
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x_in, IntPair output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_input(op, x_in);
  ZAE_CHECK(output_size.h >= 1 && output_size.w >= 1, op, ": output_size must be positive, got ",
            output_size.tuple_str());
  Tensor x = dense_data(x_in);
  const int64_t in_h = x.size(-2), in_w = x.size(-1), out_h = output_size.h, out_w = output_size.w;
  const int64_t planes = x.numel() / (in_h * in_w);
  const Shape y_shape = pooled_shape(x, out_h, out_w);
  Tensor y = Tensor::empty(y_shape, {.dtype = x.dtype(), .device = x.device()});
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    on_device(
        x.device(),
        [&] {
          kernels::cpu::adaptive_avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), planes, in_h, in_w, out_h, out_w);
        },
        [&](auto stream) {
          kernels::cuda::adaptive_avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), planes, in_h, in_w, out_h, out_w,
                                                        stream);
        });
  });
  const Shape x_shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  autograd::record(
      "AdaptiveAvgPool2dBackward", {x_in}, y, {},
      [y_shape, x_shape, dtype, device, planes, in_h, in_w, out_h, out_w](const Tensor& g_in,
                                                                          const autograd::BackwardContext&) {
        Tensor g = dense_grad("adaptive_avg_pool2d", g_in, y_shape, dtype, device);
        Tensor dx = Tensor::empty(x_shape, {.dtype = dtype, .device = device});
        dispatch_floating(dtype, "adaptive_avg_pool2d", [&](auto tag) {
          using T = typename decltype(tag)::type;
          on_device(
              device,
              [&] {
                kernels::cpu::adaptive_avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), planes, in_h, in_w, out_h,
                                                              out_w);
              },
              [&](auto stream) {
                kernels::cuda::adaptive_avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), planes, in_h, in_w, out_h,
                                                               out_w, stream);
              });
        });
        return std::vector<Tensor>{dx};
      });
  return y;
}

}  // namespace zae
