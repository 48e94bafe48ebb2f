// layer_norm: one fused forward kernel, one graph node (inputs x, weight, bias) whose
// backward is one fused kernel.
// Invariants: x's trailing dims equal normalized_shape (non-empty); weight and bias,
// when given, have exactly normalized_shape and x's dtype and device. The node saves
// x, weight and the per-row mean and rstd (M), stored in acc_t (float32 for 16-bit x).
// Devices: CPU kernels (kernels/cpu/layer_norm.h), and in a CUDA build their CUDA twins
// (kernels/cuda/layer_norm.h) on the thread's current stream of x's device.
#include "engine/autocast.h"
#include "engine/ops/backend.h"
#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "engine/ops/nn.h"
#include "engine/ops/norm_checks.h"
#include "kernels/cpu/layer_norm.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/layer_norm.h"
#endif

namespace zae {

namespace {

// Gradients (dx, dweight, dbias) of layer_norm; entries not requested stay undefined.
std::vector<Tensor> layer_norm_backward_impl(const Tensor& g_in, const Tensor& x, const Tensor& weight,
                                             const Tensor& mean, const Tensor& rstd, const Shape& normalized_shape,
                                             bool has_bias, const autograd::BackwardContext& ctx) {
  const int64_t M = mean.numel();
  const int64_t N = shape_numel(normalized_shape);
  ZAE_CHECK(g_in.shape() == x.shape(), "layer_norm backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the input shape ", shape_str(x.shape()));
  ZAE_CHECK(has_kernels_for(x.device()), "layer_norm backward: not implemented for device ", x.device(), " (dtype ",
            x.dtype(), ") in this build");
  Tensor g = dense_data(g_in.dtype() == x.dtype() ? g_in : g_in.to(x.dtype()));
  std::vector<Tensor> grads(3);
  TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  if (ctx.needs(0)) grads[0] = Tensor::empty(x.shape(), opts);
  if (ctx.needs(1) && weight.defined()) grads[1] = Tensor::empty(weight.shape(), opts);
  if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty(normalized_shape, opts);
  dispatch_floating(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      const size_t bytes =
          kernels::cuda::layer_norm_backward_workspace_bytes<T>(M, N, grads[1].defined() || grads[2].defined());
      Tensor workspace;
      if (bytes > 0)
        workspace = Tensor::empty({static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = x.device()});
      kernels::cuda::layer_norm_backward<T>(g.data<T>(), x.data<T>(), mean.data<Acc>(), rstd.data<Acc>(),
                                            ptr(weight), ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), M, N,
                                            bytes > 0 ? workspace.raw_data() : nullptr,
                                            cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::layer_norm_backward<T>(g.data<T>(), x.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), ptr(weight),
                                           ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), M, N);
    }
  });
  return grads;
}

}  // namespace

Tensor layer_norm(const Tensor& x_arg, const Shape& normalized_shape, const Tensor& weight_arg, const Tensor& bias_arg,
                  double eps) {
  const Tensor x_in = autocast::to_float(x_arg), weight_in = autocast::to_float(weight_arg),
               bias_in = autocast::to_float(bias_arg);
  ZAE_CHECK(x_in.defined(), "layer_norm: undefined input tensor");
  check_normalized_shape("layer_norm", x_in, normalized_shape);
  check_norm_affine("layer_norm", "weight", weight_in, x_in, normalized_shape, "normalized_shape");
  check_norm_affine("layer_norm", "bias", bias_in, x_in, normalized_shape, "normalized_shape");
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  ZAE_CHECK(eps >= 0.0, "layer_norm: eps must be non-negative, got ", eps);
  ZAE_CHECK(has_kernels_for(x_in.device()), "layer_norm: not implemented for device ", x_in.device(), " (dtype ",
            x_in.dtype(), ") in this build");

  Shape stats_shape(x_in.shape().begin(), x_in.shape().end() - nd);  // (M) rows, shaped like x's leading dims
  const int64_t M = shape_numel(stats_shape), N = shape_numel(normalized_shape);
  Tensor x = dense_data(x_in), weight = dense_data(weight_in), bias = dense_data(bias_in);
  Tensor y = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor mean = Tensor::empty(stats_shape, {.dtype = accumulate_dtype(x.dtype()), .device = x.device()});
  Tensor rstd = Tensor::empty(stats_shape, {.dtype = accumulate_dtype(x.dtype()), .device = x.device()});
  dispatch_floating(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      kernels::cuda::layer_norm_forward<T>(x.data<T>(), ptr(weight), ptr(bias), y.data<T>(), mean.data<Acc>(),
                                           rstd.data<Acc>(), M, N, eps, cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::layer_norm_forward<T>(x.data<T>(), ptr(weight), ptr(bias), y.data<T>(), mean.data<Acc>(),
                                          rstd.data<Acc>(), M, N, eps);
    }
  });

  const bool has_bias = bias.defined();
  autograd::record("LayerNormBackward", {x_in, weight_in, bias_in}, y, {x, weight, mean, rstd},
                   [normalized_shape, has_bias](const Tensor& g, const autograd::BackwardContext& ctx) {
                     return layer_norm_backward_impl(g, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                                     normalized_shape, has_bias, ctx);
                   });
  return y;
}

}  // namespace zae
