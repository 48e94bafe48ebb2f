// group_norm: one fused forward kernel, one graph node (inputs x, weight, bias) whose
// backward is one fused kernel (kernels/cpu/group_norm.h).
// Invariants: x is (N, C, *) with at least 2 dims, viewed as dense (N, C, S); C is a
// multiple of num_groups >= 1; weight and bias, when given, are (C) in x's dtype and
// on its device. The node saves x, weight and the per-group mean and rstd (N, G) in
// acc_t (float32 for 16-bit x).
// Devices: the CPU kernels and, in a CUDA build, their CUDA twins (kernels/cuda/
// group_norm.h) on the current stream of x's device.
#include "engine/ops/backend.h"
#include "engine/ops/group_norm.h"

#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "engine/ops/norm_checks.h"
#include "kernels/cpu/group_norm.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/group_norm.h"
#endif

namespace zae {

namespace {

// weight / bias: (C) with the channel count named in the error, then the shared checks.
void check_affine(const char* what, const Tensor& p, const Tensor& x) {
  const int64_t C = x.shape()[1];
  ZAE_CHECK(!p.defined() || (p.dim() == 1 && p.shape()[0] == C), "group_norm: ", what, " has shape ",
            shape_str(p.shape()), " but the input of shape ", shape_str(x.shape()), " has ", C,
            " channels (expected shape [", C, "])");
  check_norm_affine("group_norm", what, p, x, {C}, "num_channels");
}

// Gradients (dx, dweight, dbias) of group_norm; entries not requested stay undefined.
std::vector<Tensor> group_norm_backward_impl(const Tensor& g_in, const Tensor& x, const Tensor& weight,
                                             const Tensor& mean, const Tensor& rstd, int64_t groups, bool has_bias,
                                             const autograd::BackwardContext& ctx) {
  ZAE_CHECK(g_in.shape() == x.shape(), "group_norm backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the input shape ", shape_str(x.shape()));
  ZAE_CHECK(g_in.device() == x.device(), "group_norm backward: gradient is on ", g_in.device(),
            " but the input is on ", x.device());
  const int64_t N = x.shape()[0], C = x.shape()[1], S = N > 0 && C > 0 ? x.numel() / (N * C) : 0;
  Tensor g = dense_data(g_in.dtype() == x.dtype() ? g_in : g_in.to(x.dtype()));
  std::vector<Tensor> grads(3);
  TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  if (ctx.needs(0)) grads[0] = Tensor::empty(x.shape(), opts);
  if (ctx.needs(1) && weight.defined()) grads[1] = Tensor::empty({C}, opts);
  if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty({C}, opts);
  dispatch_floating(x.dtype(), "group_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      Tensor row_sums = Tensor::empty({2, N, C}, {.dtype = DType::float64, .device = x.device()});  // (2, N, C)
      kernels::cuda::group_norm_backward<T>(g.data<T>(), x.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), ptr(weight),
                                            ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), N, C, S, groups,
                                            row_sums.data<double>(), cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::group_norm_backward<T>(g.data<T>(), x.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), ptr(weight),
                                           ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), N, C, S, groups);
    }
  });
  return grads;
}

}  // namespace

Tensor group_norm(const Tensor& x_in, int64_t num_groups, const Tensor& weight_in, const Tensor& bias_in, double eps) {
  ZAE_CHECK(x_in.defined(), "group_norm: undefined input tensor");
  ZAE_CHECK(x_in.dim() >= 2, "group_norm: expected an input of shape (N, C, *) with at least 2 dims, got ",
            shape_str(x_in.shape()));
  ZAE_CHECK(is_floating(x_in.dtype()), "group_norm: input dtype ", x_in.dtype(),
            " is not supported (expected a floating dtype)");
  const int64_t N = x_in.shape()[0], C = x_in.shape()[1];
  ZAE_CHECK(num_groups >= 1, "group_norm: num_groups must be positive, got ", num_groups);
  ZAE_CHECK(C % num_groups == 0, "group_norm: the ", C, " channels of the input of shape ", shape_str(x_in.shape()),
            " cannot be divided into ", num_groups, " groups (num_channels must be divisible by num_groups)");
  check_affine("weight", weight_in, x_in);
  check_affine("bias", bias_in, x_in);
  ZAE_CHECK(eps >= 0.0, "group_norm: eps must be non-negative, got ", eps);
  ZAE_CHECK(has_kernels_for(x_in.device()), "group_norm: not implemented for device ", x_in.device(), " (dtype ",
            x_in.dtype(), ") in this build");

  const int64_t S = N > 0 && C > 0 ? x_in.numel() / (N * C) : 0;
  Tensor x = dense_data(x_in), weight = dense_data(weight_in), bias = dense_data(bias_in);
  Tensor y = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  const TensorOptions stats_opts{.dtype = accumulate_dtype(x.dtype()), .device = x.device()};
  Tensor mean = Tensor::empty({N, num_groups}, stats_opts);  // (N, G)
  Tensor rstd = Tensor::empty({N, num_groups}, stats_opts);  // (N, G)
  dispatch_floating(x.dtype(), "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      kernels::cuda::group_norm_forward<T>(x.data<T>(), ptr(weight), ptr(bias), y.data<T>(), mean.data<Acc>(),
                                           rstd.data<Acc>(), N, C, S, num_groups, eps,
                                           cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::group_norm_forward<T>(x.data<T>(), ptr(weight), ptr(bias), y.data<T>(), mean.data<Acc>(),
                                          rstd.data<Acc>(), N, C, S, num_groups, eps);
    }
  });

  const bool has_bias = bias.defined();
  autograd::record("GroupNormBackward", {x_in, weight_in, bias_in}, y, {x, weight, mean, rstd},
                   [num_groups, has_bias](const Tensor& g, const autograd::BackwardContext& ctx) {
                     return group_norm_backward_impl(g, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                                     num_groups, has_bias, ctx);
                   });
  return y;
}

}  // namespace zae
