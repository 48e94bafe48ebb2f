// batch_norm: one fused forward kernel, one graph node (inputs x, weight, bias) whose
// backward is one fused kernel (kernels/cpu/batch_norm.h).
// Invariants: x is (N, C, *) with at least 2 dims, viewed as dense (N, C, S); weight,
// bias, running_mean and running_var, when given, are (C) on x's device (weight and
// bias in x's dtype; the running stats any floating dtype, never requiring grad).
// The node saves x, weight and the per-channel mean and rstd the forward used (C, in
// acc_t: float32 for 16-bit x) plus whether they came from the batch. Running stats
// are updated in place under NoGradGuard after the forward succeeded; an empty batch
// leaves them unchanged (as PyTorch does).
#include "engine/ops/batch_norm.h"

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "kernels/cpu/batch_norm.h"

namespace zae {

namespace {

DType stats_dtype(DType t) { return t == DType::float64 ? DType::float64 : DType::float32; }

void check_channel_tensor(const char* what, const Tensor& p, const Tensor& x, bool same_dtype) {
  if (!p.defined()) return;
  const int64_t C = x.shape()[1];
  ZAE_CHECK(p.dim() == 1 && p.shape()[0] == C, "batch_norm: ", what, " has shape ", shape_str(p.shape()),
            " but the input of shape ", shape_str(x.shape()), " has ", C, " channels (expected shape [", C, "])");
  if (same_dtype)
    ZAE_CHECK(p.dtype() == x.dtype(), "batch_norm: ", what, " has dtype ", p.dtype(), " but the input has dtype ",
              x.dtype());
  else
    ZAE_CHECK(is_floating(p.dtype()), "batch_norm: ", what, " has dtype ", p.dtype(), " (expected a floating dtype)");
  ZAE_CHECK(p.device() == x.device(), "batch_norm: ", what, " is on ", p.device(), " but the input is on ", x.device());
}

// Gradients (dx, dweight, dbias) of batch_norm; entries not requested stay undefined.
std::vector<Tensor> batch_norm_backward_impl(const Tensor& g_in, const Tensor& x, const Tensor& weight,
                                             const Tensor& mean, const Tensor& rstd, bool batch_stats, bool has_bias,
                                             const autograd::BackwardContext& ctx) {
  ZAE_CHECK(g_in.shape() == x.shape(), "batch_norm backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the input shape ", shape_str(x.shape()));
  ZAE_CHECK(x.device().is_cpu(), "batch_norm backward: not implemented for device ", x.device(), " (dtype ", x.dtype(),
            ") in this build");
  const int64_t N = x.shape()[0], C = x.shape()[1], S = C > 0 && N > 0 ? x.numel() / (N * C) : 0;
  Tensor g = dense_data(g_in.dtype() == x.dtype() ? g_in : g_in.to(x.dtype()));
  std::vector<Tensor> grads(3);
  TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  if (ctx.needs(0)) grads[0] = Tensor::empty(x.shape(), opts);
  if (ctx.needs(1) && weight.defined()) grads[1] = Tensor::empty({C}, opts);
  if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty({C}, opts);
  dispatch_floating(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    kernels::cpu::batch_norm_backward<T>(g.data<T>(), x.data<T>(), mean.data<Acc>(), rstd.data<Acc>(), ptr(weight),
                                         ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), batch_stats, N, C, S);
  });
  return grads;
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight_in,
                  const Tensor& bias_in, bool training, double momentum, double eps) {
  ZAE_CHECK(x_in.defined(), "batch_norm: undefined input tensor");
  ZAE_CHECK(x_in.dim() >= 2, "batch_norm: expected an input of shape (N, C), (N, C, L) or (N, C, H, W), got ",
            shape_str(x_in.shape()));
  ZAE_CHECK(is_floating(x_in.dtype()), "batch_norm: input dtype ", x_in.dtype(),
            " is not supported (expected a floating dtype)");
  check_channel_tensor("weight", weight_in, x_in, true);
  check_channel_tensor("bias", bias_in, x_in, true);
  check_channel_tensor("running_mean", running_mean, x_in, false);
  check_channel_tensor("running_var", running_var, x_in, false);
  ZAE_CHECK(running_mean.defined() == running_var.defined(), "batch_norm: running_mean is ",
            running_mean.defined() ? "given" : "missing", " but running_var is ",
            running_var.defined() ? "given" : "missing", " (pass both or neither)");
  ZAE_CHECK(training || running_mean.defined(),
            "batch_norm: running_mean and running_var are required in eval mode (training = false)");
  for (const Tensor* r : {&running_mean, &running_var})
    ZAE_CHECK(!r->defined() || !r->requires_grad(), "batch_norm: running statistics must not require grad (",
              r == &running_mean ? "running_mean" : "running_var", " does)");
  ZAE_CHECK(eps >= 0.0, "batch_norm: eps must be non-negative, got ", eps);
  const int64_t N = x_in.shape()[0], C = x_in.shape()[1];
  const int64_t M = C > 0 ? x_in.numel() / C : 0;  // values per channel: N * S
  const int64_t S = N > 0 ? M / N : 0;
  ZAE_CHECK(!training || M != 1, "batch_norm: Expected more than 1 value per channel when training, got input size ",
            shape_str(x_in.shape()));
  ZAE_CHECK(x_in.device().is_cpu(), "batch_norm: not implemented for device ", x_in.device(), " (dtype ", x_in.dtype(),
            ") in this build");

  Tensor x = dense_data(x_in), weight = dense_data(weight_in), bias = dense_data(bias_in);
  const TensorOptions stats_opts{.dtype = stats_dtype(x.dtype()), .device = x.device()};
  Tensor y = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor mean = Tensor::empty({C}, stats_opts), var = Tensor::empty({C}, stats_opts);  // (C)
  Tensor rstd = Tensor::empty({C}, stats_opts);                                        // (C)
  if (!training) {
    copy_into(mean, running_mean);
    copy_into(var, running_var);
  }
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    kernels::cpu::batch_norm_forward<T>(x.data<T>(), ptr(weight), ptr(bias), y.data<T>(), mean.data<Acc>(),
                                        var.data<Acc>(), rstd.data<Acc>(), training, N, C, S, eps);
  });

  if (training && running_mean.defined() && M > 0) {
    NoGradGuard no_grad;
    Tensor unbiased = var * (static_cast<double>(M) / static_cast<double>(M - 1));
    Tensor rm = running_mean, rv = running_var;  // handles on the caller's buffers
    rm.mul_(1.0 - momentum).add_(mean, momentum);
    rv.mul_(1.0 - momentum).add_(unbiased, momentum);
  }

  const bool has_bias = bias.defined();
  autograd::record("BatchNormBackward", {x_in, weight_in, bias_in}, y, {x, weight, mean, rstd},
                   [training, has_bias](const Tensor& g, const autograd::BackwardContext& ctx) {
                     return batch_norm_backward_impl(g, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                                     training, has_bias, ctx);
                   });
  return y;
}

}  // namespace zae
