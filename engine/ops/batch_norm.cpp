// batch_norm: one fused forward kernel, one graph node (inputs x, weight, bias) whose
// backward is one fused kernel (kernels/cpu/batch_norm.h).
// Invariants: x is (N, C, *) with at least 2 dims, viewed as dense (N, C, S); weight,
// bias, running_mean and running_var, when given, are (C) on x's device (weight and
// bias in x's dtype; the running stats any floating dtype, never requiring grad).
// The node saves x, weight and the per-channel mean and rstd the forward used (C, in
// acc_t: float32 for 16-bit x) plus whether they came from the batch. Running stats
// are updated in place under NoGradGuard after the forward succeeded; an empty batch
// leaves them unchanged (as PyTorch does).
// CUDA (kernels/cuda/batch_norm.h: cuDNN for the training forward / backward and the
// inference forward): same contract and saved tensors, on the current stream of x's
// device. Running statistics that are dense, 16-byte aligned and of the stats dtype are
// updated by cuDNN itself (same momentum / unbiased-variance convention); others get the
// CPU's update, from the batch mean and unbiased variance cuDNN writes to scratch.
#include "engine/ops/backend.h"
#include "engine/ops/batch_norm.h"

#include <cstdint>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "kernels/cpu/batch_norm.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "engine/ops/dense_aligned.h"
#include "kernels/cuda/batch_norm.h"
#endif

namespace zae {

namespace {

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

#ifdef ZAE_WITH_CUDA
// Whether cuDNN may update `r` in place: dense, 16-byte aligned, in the stats dtype.
bool cudnn_updatable(const Tensor& r, DType stats) {
  return r.dtype() == stats && r.is_contiguous() && reinterpret_cast<uintptr_t>(r.raw_data()) % 16 == 0;
}

// Gradients (dx, dweight, dbias) on CUDA; entries not requested stay undefined.
std::vector<Tensor> batch_norm_backward_cuda(const Tensor& g_in, const Tensor& x, const Tensor& weight,
                                             const Tensor& mean, const Tensor& rstd, bool batch_stats, bool has_bias,
                                             double eps, const autograd::BackwardContext& ctx) {
  ZAE_CHECK(g_in.shape() == x.shape(), "batch_norm backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the input shape ", shape_str(x.shape()));
  ZAE_CHECK(g_in.device() == x.device(), "batch_norm backward: gradient is on ", g_in.device(),
            " but the input is on ", x.device());
  const int dev = x.device().index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  const int64_t N = x.shape()[0], C = x.shape()[1], S = C > 0 && N > 0 ? x.numel() / (N * C) : 0;
  Tensor g = dense_aligned(g_in.dtype() == x.dtype() ? g_in : g_in.to(x.dtype()));
  std::vector<Tensor> grads(3);
  TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  // cuDNN's training backward always writes dx: give it one even when x needs none.
  if (ctx.needs(0) || batch_stats) grads[0] = Tensor::empty(x.shape(), opts);
  if (ctx.needs(1) && weight.defined()) grads[1] = Tensor::empty({C}, opts);
  if (ctx.needs(2) && has_bias) grads[2] = Tensor::empty({C}, opts);
  const TensorOptions popts{.dtype = accumulate_dtype(x.dtype()), .device = x.device()};
  dispatch_floating(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using P = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (batch_stats) {
      Tensor scale = Tensor::empty({C}, popts), shift = Tensor::empty({C}, popts);    // (C)
      Tensor param_grads = Tensor::empty({2, C}, popts);                             // (2, C)
      kernels::cuda::batch_norm_params<T>(ptr(weight), nullptr, scale.data<P>(), shift.data<P>(), C, stream);
      kernels::cuda::batch_norm_backward_training<T>(g.data<T>(), x.data<T>(), scale.data<P>(), mean.data<P>(),
                                                     rstd.data<P>(), grads[0].data<T>(), ptr(grads[1]), ptr(grads[2]),
                                                     param_grads.data<P>(), N, C, S, eps, stream);
    } else {
      kernels::cuda::batch_norm_backward_eval<T>(g.data<T>(), x.data<T>(), mean.data<P>(), rstd.data<P>(),
                                                 ptr(weight), ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), N, C, S,
                                                 stream);
    }
  });
  if (!ctx.needs(0)) grads[0] = Tensor();
  return grads;
}

// batch_norm on CUDA, after the op's validation (contract in batch_norm.h).
Tensor batch_norm_cuda(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight_in, const Tensor& bias_in, bool training, double momentum, double eps) {
  const int64_t N = x_in.shape()[0], C = x_in.shape()[1];
  const int64_t M = C > 0 ? x_in.numel() / C : 0;  // values per channel: N * S
  const int64_t S = N > 0 ? M / N : 0;
  const int dev = x_in.device().index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t stream = cuda::current_stream(dev);

  Tensor x = dense_aligned(x_in), weight = dense_data(weight_in), bias = dense_data(bias_in);
  const DType stats = accumulate_dtype(x.dtype());
  const TensorOptions popts{.dtype = stats, .device = x.device()};
  Tensor y = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor mean = Tensor::empty({C}, popts), rstd = Tensor::empty({C}, popts);    // (C)
  Tensor scale = Tensor::empty({C}, popts), shift = Tensor::empty({C}, popts);  // (C) weight / bias as stats dtype
  const bool update = training && running_mean.defined() && M > 0;
  const bool fused = update && cudnn_updatable(running_mean, stats) && cudnn_updatable(running_var, stats);
  Tensor batch_mean, batch_var;  // (C) for an update done here: batch mean, unbiased batch variance
  if (update && !fused) {
    batch_mean = Tensor::empty({C}, popts);
    batch_var = Tensor::empty({C}, popts);
  }
  Tensor var;  // (C) eval: the running variance as stats dtype
  if (!training) {
    copy_into(mean, running_mean);
    var = Tensor::empty({C}, popts);
    copy_into(var, running_var);
  }
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using P = acc_t<T>;
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    kernels::cuda::batch_norm_params<T>(ptr(weight), ptr(bias), scale.data<P>(), shift.data<P>(), C, stream);
    if (training) {
      P* rm = fused ? running_mean.data<P>() : (update ? batch_mean.data<P>() : nullptr);
      P* rv = fused ? running_var.data<P>() : (update ? batch_var.data<P>() : nullptr);
      kernels::cuda::batch_norm_forward_training<T>(x.data<T>(), scale.data<P>(), shift.data<P>(), y.data<T>(),
                                                    mean.data<P>(), rstd.data<P>(), rm, rv, fused ? momentum : 1.0,
                                                    update && !fused, N, C, S, eps, stream);
    } else {
      kernels::cuda::batch_norm_rstd<P>(var.data<P>(), rstd.data<P>(), C, eps, stream);
      kernels::cuda::batch_norm_forward_inference<T>(x.data<T>(), scale.data<P>(), shift.data<P>(), mean.data<P>(),
                                                     var.data<P>(), y.data<T>(), N, C, S, eps, stream);
    }
  });
  if (fused) {  // written in place by cuDNN: in-place writes bump the version
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  } else if (update) {
    NoGradGuard no_grad;
    Tensor rm = running_mean, rv = running_var;  // handles on the caller's buffers
    rm.mul_(1.0 - momentum).add_(batch_mean, momentum);
    rv.mul_(1.0 - momentum).add_(batch_var, momentum);
  }

  const bool has_bias = bias.defined();
  autograd::record("BatchNormBackward", {x_in, weight_in, bias_in}, y, {x, weight, mean, rstd},
                   [training, has_bias, eps](const Tensor& g, const autograd::BackwardContext& ctx) {
                     return batch_norm_backward_cuda(g, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                                     training, has_bias, eps, ctx);
                   });
  return y;
}
#endif

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
  ZAE_CHECK(has_kernels_for(x_in.device()), "batch_norm: not implemented for device ", x_in.device(), " (dtype ",
            x_in.dtype(), ") in this build");
#ifdef ZAE_WITH_CUDA
  if (x_in.device().is_cuda())
    return batch_norm_cuda(x_in, running_mean, running_var, weight_in, bias_in, training, momentum, eps);
#endif

  Tensor x = dense_data(x_in), weight = dense_data(weight_in), bias = dense_data(bias_in);
  const TensorOptions stats_opts{.dtype = accumulate_dtype(x.dtype()), .device = x.device()};
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
