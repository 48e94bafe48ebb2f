// conv2d / conv1d: validate, lay the operands out densely, run the im2col + GEMM
// drivers (kernels/cpu/im2col.h), record one graph node with inputs (x, weight, bias).
//
// Invariants:
// - Validation happens on the shapes the caller passed (1-D ops report 1-D shapes),
//   before any reshaping; every message names the op and the values involved.
// - conv1d runs the 2-D core on (N, C, 1, L) / (O, C/G, 1, k) views, and unbatched
//   inputs run as a batch of one; those views carry the gradient back.
// - CPU: float16/bfloat16 are computed in float32 (converted copies in and out). CUDA
//   (cuDNN, kernels/cuda/conv.h): every dtype runs as itself, on dense 16-byte-aligned
//   operands (copied when the caller's are not), on the current stream of x's device;
//   TF32 only with zae::cuda::allow_tf32(), deterministic algorithms with
//   zae::deterministic() (both read when the forward or backward starts).
// - The node saves x only when weight needs a gradient and weight only when x does.
#include "engine/autocast.h"
#include "engine/ops/backend.h"
#include "engine/ops/conv.h"

#include <array>
#include <sstream>
#include <type_traits>

#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "kernels/cpu/im2col.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "engine/cuda_matmul.h"
#include "engine/determinism.h"
#include "engine/ops/dense_aligned.h"
#include "kernels/cuda/conv.h"
#endif

namespace zae {

std::string IntPair::str() const { return scalar ? std::to_string(h) : tuple_str(); }

std::string IntPair::tuple_str() const {
  std::ostringstream os;  // (not "(" + std::to_string(h): GCC 12 flags it with a false -Wrestrict)
  os << "(" << h << ", " << w << ")";
  return os.str();
}

namespace {

using kernels::cpu::ConvShape;

// What the user called and in which terms errors talk about it.
struct ConvCall {
  const char* op;
  int spatial;  // 1 or 2 spatial dims as the user sees them
  std::array<int64_t, 2> stride, padding, dilation;  // (h, w); 1-D uses the w entries
  int64_t groups;
};

// Python-like tuple of the dims the user sees: "(5,)" for 1-D, "(5, 3)" for 2-D.
std::string dims_str(const ConvCall& c, int64_t h, int64_t w) {
  std::ostringstream os;
  if (c.spatial == 1) {
    os << "(" << w << ",)";
  } else {
    os << "(" << h << ", " << w << ")";
  }
  return os.str();
}
std::string dims_str(const ConvCall& c, const std::array<int64_t, 2>& v) { return dims_str(c, v[0], v[1]); }

// A dense tensor of dtype dt holding t's values (t itself when it already is one). No autograd.
Tensor dense_as(const Tensor& t, DType dt) {
  if (!t.defined() || (t.is_contiguous() && t.dtype() == dt)) return t;
  Tensor out = Tensor::empty(t.shape(), {.dtype = dt, .device = t.device()});
  copy_into(out, t);
  return out;
}

DType compute_dtype(DType t) { return (t == DType::float16 || t == DType::bfloat16) ? DType::float32 : t; }

// Checks everything about a call; x and weight have the user's shapes.
void validate(const ConvCall& c, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = c.op;
  ZAE_CHECK(x.defined(), op, ": undefined input tensor");
  ZAE_CHECK(weight.defined(), op, ": undefined weight tensor");
  const int64_t batched = c.spatial + 2, unbatched = c.spatial + 1;
  const char* x_layout = c.spatial == 1 ? "(N, C, L) or unbatched (C, L)" : "(N, C, H, W) or unbatched (C, H, W)";
  ZAE_CHECK(x.dim() == batched || x.dim() == unbatched, op, ": expected a ", batched, "-D ", x_layout,
            " input, got shape ", shape_str(x.shape()));
  const char* w_layout = c.spatial == 1 ? "(out_channels, in_channels / groups, kL)"
                                        : "(out_channels, in_channels / groups, kH, kW)";
  ZAE_CHECK(weight.dim() == batched, op, ": weight must be ", batched, "-D ", w_layout, ", got shape ",
            shape_str(weight.shape()));
  ZAE_CHECK(is_floating(x.dtype()), op, ": dtype ", x.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
  ZAE_CHECK(weight.dtype() == x.dtype(), op, ": weight has dtype ", weight.dtype(), " but input has dtype ",
            x.dtype(), " (shapes ", shape_str(weight.shape()), " and ", shape_str(x.shape()), ")");
  ZAE_CHECK(weight.device() == x.device(), op, ": weight is on ", weight.device(), " but input is on ", x.device());
  if (bias.defined()) {
    ZAE_CHECK(bias.dtype() == x.dtype(), op, ": bias has dtype ", bias.dtype(), " but input has dtype ", x.dtype());
    ZAE_CHECK(bias.device() == x.device(), op, ": bias is on ", bias.device(), " but input is on ", x.device());
  }
  ZAE_CHECK(has_kernels_for(x.device()), op, ": not implemented for device ", x.device(), " (dtype ", x.dtype(),
            ") in this build");

  ZAE_CHECK(c.groups >= 1, op, ": groups must be positive, got ", c.groups);
  for (int d = 2 - c.spatial; d < 2; ++d) {
    ZAE_CHECK(c.stride[d] >= 1, op, ": stride must be positive, got ", dims_str(c, c.stride));
    ZAE_CHECK(c.dilation[d] >= 1, op, ": dilation must be positive, got ", dims_str(c, c.dilation));
    ZAE_CHECK(c.padding[d] >= 0, op, ": padding must be non-negative, got ", dims_str(c, c.padding));
  }
  const int64_t out_channels = weight.size(0), in_channels = x.size(x.dim() - c.spatial - 1);
  ZAE_CHECK(out_channels % c.groups == 0, op, ": out_channels (weight.size(0) = ", out_channels,
            ") must be divisible by groups = ", c.groups, " (weight shape ", shape_str(weight.shape()), ")");
  ZAE_CHECK(weight.size(1) * c.groups == in_channels, op, ": given groups = ", c.groups, ", weight of shape ",
            shape_str(weight.shape()), " expects input ", shape_str(x.shape()), " to have ",
            weight.size(1) * c.groups, " channels (weight.size(1) * groups), but it has ", in_channels);
  if (bias.defined()) {
    ZAE_CHECK(bias.dim() == 1 && bias.size(0) == out_channels, op, ": bias must have shape [", out_channels,
              "] (out_channels), got ", shape_str(bias.shape()));
  }
  // Spatial sizes: kernel, input, padded input, dilated kernel extent.
  std::array<int64_t, 2> k{1, 1}, in{1, 1};
  for (int d = 2 - c.spatial; d < 2; ++d) {
    k[d] = weight.size(weight.dim() - 2 + d);
    in[d] = x.size(x.dim() - 2 + d);
  }
  for (int d = 2 - c.spatial; d < 2; ++d) {
    ZAE_CHECK(k[d] >= 1, op, ": kernel size must be positive, got weight shape ", shape_str(weight.shape()));
  }
  std::array<int64_t, 2> padded{}, extent{};
  bool fits = true;
  for (int d = 0; d < 2; ++d) {
    padded[d] = in[d] + 2 * c.padding[d];
    extent[d] = c.dilation[d] * (k[d] - 1) + 1;
    fits = fits && extent[d] <= padded[d];
  }
  ZAE_CHECK(fits, op, ": kernel size ", dims_str(c, k), " with dilation ", dims_str(c, c.dilation), " spans ",
            dims_str(c, extent), ", larger than the padded input ", dims_str(c, padded), " (input ",
            shape_str(x.shape()), ", padding ", dims_str(c, c.padding), ")");
}

#ifdef ZAE_WITH_CUDA
kernels::cuda::ConvMath conv_math() { return {.allow_tf32 = cuda::allow_tf32(), .deterministic = deterministic()}; }

// The 2-D core on CUDA (cuDNN): same contract as conv2d_core.
Tensor conv2d_core_cuda(const ConvCall& c, const ConvShape& s, const Tensor& x_in, const Tensor& w_in,
                        const Tensor& b_in) {
  const int64_t batch = x_in.size(0), out_channels = w_in.size(0), groups = c.groups;
  const DType dtype = x_in.dtype();
  const int device = x_in.device().index;
  cuda::DeviceGuard guard(device);
  Tensor x = dense_aligned(x_in), w = dense_aligned(w_in), b = dense_as(b_in, dtype);
  Tensor y = Tensor::empty({batch, out_channels, s.out_h, s.out_w}, {.dtype = dtype, .device = x.device()});
  const kernels::cuda::ConvMath math = conv_math();
  dispatch_floating(dtype, c.op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::cuda::conv2d_forward<T>(x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(),
                                     batch, out_channels, groups, s, math, cuda::current_stream(device));
  });

  const bool has_bias = b_in.defined();
  const Shape x_shape = x_in.shape(), w_shape = w_in.shape(), y_shape = y.shape();
  const std::string op = c.op;
  const Device dev = x_in.device();
  autograd::record(
      c.spatial == 1 ? "Conv1dBackward" : "Conv2dBackward", {x_in, w_in, b_in}, y,
      {w_in.requires_grad() ? x : Tensor(), x_in.requires_grad() ? w : Tensor()},
      [s, batch, out_channels, groups, has_bias, dtype, dev, x_shape, w_shape, y_shape, op](
          const Tensor& g_in, const autograd::BackwardContext& ctx) {
        ZAE_CHECK(g_in.shape() == y_shape, op, " backward: gradient shape ", shape_str(g_in.shape()),
                  " does not match the output shape ", shape_str(y_shape));
        ZAE_CHECK(g_in.device() == dev, op, " backward: gradient is on ", g_in.device(), " but the input is on ", dev);
        cuda::DeviceGuard guard(dev.index);
        const Tensor& x = ctx.saved[0];
        const Tensor& w = ctx.saved[1];
        Tensor g = dense_aligned(dense_as(g_in, dtype));
        TensorOptions opts{.dtype = dtype, .device = dev};
        std::vector<Tensor> grads(3);
        if (ctx.needs(0)) grads[0] = Tensor::empty(x_shape, opts);
        if (ctx.needs(1)) grads[1] = Tensor::empty(w_shape, opts);
        if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty({out_channels}, opts);
        const kernels::cuda::ConvMath math = conv_math();
        cudaStream_t stream = cuda::current_stream(dev.index);
        dispatch_floating(dtype, op, [&](auto tag) {
          using T = typename decltype(tag)::type;
          if (grads[0].defined())
            kernels::cuda::conv2d_backward_data<T>(g.data<T>(), w.data<T>(), grads[0].data<T>(), batch, out_channels,
                                                   groups, s, math, stream);
          if (grads[1].defined())
            kernels::cuda::conv2d_backward_filter<T>(g.data<T>(), x.data<T>(), grads[1].data<T>(), batch,
                                                     out_channels, groups, s, math, stream);
          if (grads[2].defined())
            kernels::cuda::conv2d_backward_bias<T>(g.data<T>(), grads[2].data<T>(), batch, out_channels,
                                                   s.out_plane(), stream);
        });
        return grads;
      });
  return y;
}
#endif

// The 2-D core on a validated batched x (N, C, H, W) and weight (O, C/G, kH, kW).
Tensor conv2d_core(const ConvCall& c, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  ConvShape s;
  s.channels = x_in.size(1);
  s.height = x_in.size(2);
  s.width = x_in.size(3);
  s.kernel_h = w_in.size(2);
  s.kernel_w = w_in.size(3);
  s.stride_h = c.stride[0];
  s.stride_w = c.stride[1];
  s.pad_h = c.padding[0];
  s.pad_w = c.padding[1];
  s.dilation_h = c.dilation[0];
  s.dilation_w = c.dilation[1];
  s.out_h = (s.height + 2 * s.pad_h - s.dilation_h * (s.kernel_h - 1) - 1) / s.stride_h + 1;
  s.out_w = (s.width + 2 * s.pad_w - s.dilation_w * (s.kernel_w - 1) - 1) / s.stride_w + 1;
  const int64_t batch = x_in.size(0), out_channels = w_in.size(0), groups = c.groups;
#ifdef ZAE_WITH_CUDA
  if (x_in.device().is_cuda()) return conv2d_core_cuda(c, s, x_in, w_in, b_in);
#endif
  const DType dtype = x_in.dtype(), cd = compute_dtype(dtype);

  Tensor x = dense_as(x_in, cd), w = dense_as(w_in, cd), b = dense_as(b_in, cd);
  Tensor y = Tensor::empty({batch, out_channels, s.out_h, s.out_w}, {.dtype = cd, .device = x.device()});
  dispatch_floating(cd, c.op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      kernels::cpu::conv2d_forward<T>(x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(),
                                      batch, out_channels, groups, s);
    }
  });
  Tensor out = dense_as(y, dtype);

  const bool has_bias = b_in.defined();
  const Shape x_shape = x_in.shape(), w_shape = w_in.shape(), y_shape = out.shape();
  const std::string op = c.op;
  autograd::record(
      c.spatial == 1 ? "Conv1dBackward" : "Conv2dBackward", {x_in, w_in, b_in}, out,
      {w_in.requires_grad() ? x : Tensor(), x_in.requires_grad() ? w : Tensor()},
      [s, batch, out_channels, groups, has_bias, dtype, cd, x_shape, w_shape, y_shape, op](
          const Tensor& g_in, const autograd::BackwardContext& ctx) {
        ZAE_CHECK(g_in.shape() == y_shape, op, " backward: gradient shape ", shape_str(g_in.shape()),
                  " does not match the output shape ", shape_str(y_shape));
        ZAE_CHECK(g_in.device().is_cpu(), op, " backward: not implemented for device ", g_in.device(), " (dtype ",
                  g_in.dtype(), ") in this build");
        const Tensor& x = ctx.saved[0];
        const Tensor& w = ctx.saved[1];
        Tensor g = dense_as(g_in, cd);
        TensorOptions opts{.dtype = cd, .device = g.device()};
        std::vector<Tensor> grads(3);
        if (ctx.needs(0)) grads[0] = Tensor::empty(x_shape, opts);
        if (ctx.needs(1)) grads[1] = Tensor::empty(w_shape, opts);
        if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty({out_channels}, opts);
        dispatch_floating(cd, op, [&](auto tag) {
          using T = typename decltype(tag)::type;
          if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
            auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
            kernels::cpu::conv2d_backward<T>(g.data<T>(), grads[1].defined() ? x.data<T>() : nullptr,
                                             grads[0].defined() ? w.data<T>() : nullptr, ptr(grads[0]),
                                             ptr(grads[1]), ptr(grads[2]), batch, out_channels, groups, s);
          }
        });
        for (Tensor& t : grads) t = dense_as(t, dtype);
        return grads;
      });
  return out;
}

// Runs a validated call: x and weight as the user gave them, made 4-D and batched here.
Tensor run(const ConvCall& c, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const bool batched = x.dim() == c.spatial + 2;
  Tensor x4 = batched ? x : x.unsqueeze(0);
  Tensor w4 = weight;
  if (c.spatial == 1) {
    x4 = x4.unsqueeze(2);     // (N, C, 1, L)
    w4 = weight.unsqueeze(2);  // (O, C/G, 1, k)
  }
  Tensor y = conv2d_core(c, x4, w4, bias);
  if (c.spatial == 1) y = y.squeeze(2);
  return batched ? y : y.squeeze(0);
}

}  // namespace

Tensor conv2d(const Tensor& x_arg, const Tensor& weight_arg, const Tensor& bias_arg, const Conv2dParams& p) {
  const Tensor x = autocast::to_low(x_arg), weight = autocast::to_low(weight_arg), bias = autocast::to_low(bias_arg);
  const ConvCall c{"conv2d",
                   2,
                   {p.stride.h, p.stride.w},
                   {p.padding.h, p.padding.w},
                   {p.dilation.h, p.dilation.w},
                   p.groups};
  validate(c, x, weight, bias);
  return run(c, x, weight, bias);
}

Tensor conv1d(const Tensor& x_arg, const Tensor& weight_arg, const Tensor& bias_arg, const Conv1dParams& p) {
  const Tensor x = autocast::to_low(x_arg), weight = autocast::to_low(weight_arg), bias = autocast::to_low(bias_arg);
  const ConvCall c{"conv1d", 1, {1, p.stride}, {0, p.padding}, {1, p.dilation}, p.groups};
  validate(c, x, weight, bias);
  return run(c, x, weight, bias);
}

}  // namespace zae
