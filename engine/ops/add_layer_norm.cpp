// add_layer_norm: sum = x + residual and out = layer_norm(sum) from one fused forward
// kernel, and one fused backward kernel that takes the gradients of BOTH outputs:
// d_x = d_residual = g_sum + d layer_norm / d sum (g_out), plus dweight and dbias.
//
// Graph construction (the tape has one output per node, and a node receives one summed
// gradient, so no single node can see g_sum and g_out apart):
//   x, residual, weight, bias --> core node ("AddLayerNormBackward"), output: an internal
//                                 1-element anchor tensor
//   anchor --> sum node ("AddLayerNormSumBackward"), output: sum
//   anchor --> out node ("AddLayerNormOutBackward"), output: out
// The sum / out nodes run first (the core depends on both) and park their incoming
// gradient in a stash shared with the core; each returns a 1-element CPU token to the
// anchor (1 from sum, 2 from out), so the core's incoming "gradient" is 1, 2 or 3 and says
// which parked gradients belong to this pass (a stale one from an aborted pass is never
// used). The core then runs the fused backward and clears the stash. A node whose output
// got no gradient does not run, and the core still runs when either did.
// Consequence: autograd::grad(out, {sum}) reports sum as unused - out is a function of
// x and residual in this graph, not of the tensor sum.
//
// Invariants: x and residual have equal shapes, dtypes and devices; their trailing dims
// equal normalized_shape (non-empty); weight and bias, when given, have exactly
// normalized_shape and x's dtype and device. Under autocast every input runs in float32,
// like layer_norm. The core saves sum, weight and the per-row mean and rstd (M), stored
// in acc_t (float32 for 16-bit inputs). Devices: CPU kernels
// (kernels/cpu/add_layer_norm.h) and in a CUDA build their CUDA twins
// (kernels/cuda/add_layer_norm.h) on the thread's current stream of x's device.
#include <memory>

#include "engine/autocast.h"
#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/ops/norm_checks.h"
#include "kernels/cpu/add_layer_norm.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/add_layer_norm.h"
#endif

namespace zae {

namespace {

constexpr const char* kOp = "add_layer_norm";

// Gradients parked by the sum / out nodes for the core node (see the file header).
struct ParkedGrads {
  Tensor g_sum;
  Tensor g_out;
};

constexpr double kTokenSum = 1.0, kTokenOut = 2.0;

Tensor token(double v) { return full({1}, v, {.dtype = DType::float32, .device = Device::cpu()}); }

Tensor dense_as(const Tensor& g, const Tensor& like) {
  ZAE_CHECK(g.shape() == like.shape(), kOp, " backward: gradient shape ", shape_str(g.shape()),
            " does not match the output shape ", shape_str(like.shape()));
  return dense_data(g.dtype() == like.dtype() ? g : g.to(like.dtype()));
}

// Gradients (d_x, d_residual, dweight, dbias) from the parked g_sum / g_out (either may be
// undefined); entries not requested stay undefined.
std::vector<Tensor> add_layer_norm_backward_impl(const Tensor& g_sum_in, const Tensor& g_out_in, const Tensor& sum,
                                                 const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                                 const Shape& normalized_shape, bool has_bias,
                                                 const autograd::BackwardContext& ctx) {
  std::vector<Tensor> grads(4);
  const bool need_d = ctx.needs(0) || ctx.needs(1);
  const Tensor g_sum = g_sum_in.defined() ? dense_as(g_sum_in, sum) : Tensor();
  if (!g_out_in.defined()) {  // out got no gradient: d_sum = g_sum, no affine gradients
    if (need_d && g_sum.defined()) grads[0] = grads[1] = g_sum;
    return grads;
  }
  ZAE_CHECK(has_kernels_for(sum.device()), kOp, " backward: not implemented for device ", sum.device(), " (dtype ",
            sum.dtype(), ") in this build");
  const Tensor g_out = dense_as(g_out_in, sum);
  const int64_t M = mean.numel(), N = shape_numel(normalized_shape);
  TensorOptions opts{.dtype = sum.dtype(), .device = sum.device()};
  Tensor d_sum = need_d ? Tensor::empty(sum.shape(), opts) : Tensor();
  if (ctx.needs(2) && weight.defined()) grads[2] = Tensor::empty(weight.shape(), opts);
  if (ctx.needs(3) && has_bias) grads[3] = Tensor::empty(normalized_shape, opts);
  dispatch_floating(sum.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (sum.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(sum.device().index);
      const size_t bytes = kernels::cuda::add_layer_norm_backward_workspace_bytes<T>(
          M, N, grads[2].defined() || grads[3].defined());
      Tensor workspace;
      if (bytes > 0)
        workspace = Tensor::empty({static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = sum.device()});
      kernels::cuda::add_layer_norm_backward<T>(g_out.data<T>(), ptr(g_sum), sum.data<T>(), mean.data<Acc>(),
                                                rstd.data<Acc>(), ptr(weight), ptr(d_sum), ptr(grads[2]),
                                                ptr(grads[3]), M, N, bytes > 0 ? workspace.raw_data() : nullptr,
                                                cuda::current_stream(sum.device().index));
#endif
    } else {
      kernels::cpu::add_layer_norm_backward<T>(g_out.data<T>(), ptr(g_sum), sum.data<T>(), mean.data<Acc>(),
                                               rstd.data<Acc>(), ptr(weight), ptr(d_sum), ptr(grads[2]),
                                               ptr(grads[3]), M, N);
    }
  });
  if (need_d) grads[0] = grads[1] = d_sum;  // the same gradient for both addends
  return grads;
}

}  // namespace

AddLayerNormResult add_layer_norm(const Tensor& x_arg, const Tensor& residual_arg, const Shape& normalized_shape,
                                  const Tensor& weight_arg, const Tensor& bias_arg, double eps) {
  const Tensor x_in = autocast::to_float(x_arg), residual_in = autocast::to_float(residual_arg),
               weight_in = autocast::to_float(weight_arg), bias_in = autocast::to_float(bias_arg);
  ZAE_CHECK(x_in.defined(), kOp, ": undefined input tensor x");
  ZAE_CHECK(residual_in.defined(), kOp, ": undefined input tensor residual");
  ZAE_CHECK(x_in.shape() == residual_in.shape(), kOp, ": x has shape ", shape_str(x_in.shape()),
            " but residual has shape ", shape_str(residual_in.shape()), " (they must be equal; no broadcasting)");
  ZAE_CHECK(x_in.dtype() == residual_in.dtype(), kOp, ": x has dtype ", x_in.dtype(), " but residual has dtype ",
            residual_in.dtype());
  ZAE_CHECK(x_in.device() == residual_in.device(), kOp, ": x is on ", x_in.device(), " but residual is on ",
            residual_in.device());
  check_normalized_shape(kOp, x_in, normalized_shape);
  check_norm_affine(kOp, "weight", weight_in, x_in, normalized_shape, "normalized_shape");
  check_norm_affine(kOp, "bias", bias_in, x_in, normalized_shape, "normalized_shape");
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  ZAE_CHECK(eps >= 0.0, kOp, ": eps must be non-negative, got ", eps);
  ZAE_CHECK(has_kernels_for(x_in.device()), kOp, ": not implemented for device ", x_in.device(), " (dtype ",
            x_in.dtype(), ") in this build");

  Shape stats_shape(x_in.shape().begin(), x_in.shape().end() - nd);  // (M) rows, shaped like x's leading dims
  const int64_t M = shape_numel(stats_shape), N = shape_numel(normalized_shape);
  Tensor x = dense_data(x_in), residual = dense_data(residual_in), weight = dense_data(weight_in),
         bias = dense_data(bias_in);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Tensor sum = Tensor::empty(x.shape(), opts);
  Tensor out = Tensor::empty(x.shape(), opts);
  Tensor mean = Tensor::empty(stats_shape, {.dtype = accumulate_dtype(x.dtype()), .device = x.device()});
  Tensor rstd = Tensor::empty(stats_shape, {.dtype = accumulate_dtype(x.dtype()), .device = x.device()});
  dispatch_floating(x.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      kernels::cuda::add_layer_norm_forward<T>(x.data<T>(), residual.data<T>(), ptr(weight), ptr(bias),
                                               sum.data<T>(), out.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), M,
                                               N, eps, cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::add_layer_norm_forward<T>(x.data<T>(), residual.data<T>(), ptr(weight), ptr(bias),
                                              sum.data<T>(), out.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), M, N,
                                              eps);
    }
  });

  if (autograd::any_requires_grad({x_in, residual_in, weight_in, bias_in})) {
    auto parked = std::make_shared<ParkedGrads>();
    const bool has_bias = bias.defined();
    Tensor anchor = Tensor::empty({1}, {.dtype = DType::float32, .device = Device::cpu()});
    autograd::record(
        "AddLayerNormBackward", {x_in, residual_in, weight_in, bias_in}, anchor, {sum, weight, mean, rstd},
        [parked, normalized_shape, has_bias](const Tensor& tokens, const autograd::BackwardContext& ctx) {
          const auto code = static_cast<int>(tokens.item<double>() + 0.5);  // 1: g_sum, 2: g_out, 3: both
          Tensor g_sum = (code & 1) != 0 ? std::move(parked->g_sum) : Tensor();
          Tensor g_out = (code & 2) != 0 ? std::move(parked->g_out) : Tensor();
          parked->g_sum = Tensor();
          parked->g_out = Tensor();
          return add_layer_norm_backward_impl(g_sum, g_out, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                              normalized_shape, has_bias, ctx);
        });
    autograd::record("AddLayerNormSumBackward", {anchor}, sum, {},
                     [parked](const Tensor& g, const autograd::BackwardContext&) {
                       parked->g_sum = g;
                       return std::vector<Tensor>{token(kTokenSum)};
                     });
    autograd::record("AddLayerNormOutBackward", {anchor}, out, {},
                     [parked](const Tensor& g, const autograd::BackwardContext&) {
                       parked->g_out = g;
                       return std::vector<Tensor>{token(kTokenOut)};
                     });
  }
  return {sum, out};
}

}  // namespace zae
