// Loss functions as composites of existing autograd ops (each a handful of
// elementwise passes), except binary_cross_entropy_with_logits, whose forward runs
// without recording and whose backward is one closed-form node (exact at x = 0,
// where the composite's max(-x, 0) and |x| have kinks).
// Invariants: see loss.h. Inputs are validated before any work: shapes, dtypes and
// devices are named in every error; nll_loss targets must lie in [0, C) or equal
// ignore_index. nll_loss is a composite: on CUDA its target validation runs the
// kernel of kernels/cuda/cross_entropy.h (one host synchronisation, for the error) and
// its arithmetic runs through the composite ops' own CUDA kernels.
#include "engine/autocast.h"
#include "engine/ops/loss.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/index.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"
#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/cross_entropy.h"
#endif

namespace zae {

namespace {

Tensor reduce(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::none:
      return loss;
    case Reduction::mean:
      return mean(loss);
    case Reduction::sum:
      return sum(loss);
  }
  ZAE_FAIL("unknown reduction code ", static_cast<int>(reduction));
}

// The checks every elementwise loss shares: same shape, floating dtype, one dtype, one device.
void check_pair(const char* op, const Tensor& input, const Tensor& target) {
  ZAE_CHECK(input.defined() && target.defined(), op, ": undefined ", input.defined() ? "target" : "input", " tensor");
  ZAE_CHECK(is_floating(input.dtype()), op, ": input dtype ", input.dtype(),
            " is not supported (expected a floating dtype)");
  ZAE_CHECK(input.shape() == target.shape(), op, ": target of shape ", shape_str(target.shape()),
            " does not match the input of shape ", shape_str(input.shape()),
            " (shapes must be equal; broadcast explicitly if intended)");
  ZAE_CHECK(target.dtype() == input.dtype(), op, ": target dtype ", target.dtype(), " does not match the input dtype ",
            input.dtype());
  ZAE_CHECK(target.device() == input.device(), op, ": target is on ", target.device(), " but the input is on ",
            input.device());
}

// A weight-like tensor that must broadcast to the input's shape (bce weight, pos_weight).
void check_broadcast_weight(const char* op, const char* what, const Tensor& w, const Tensor& input) {
  if (!w.defined()) return;
  ZAE_CHECK(is_floating(w.dtype()), op, ": ", what, " dtype ", w.dtype(), " is not supported (expected floating)");
  ZAE_CHECK(w.device() == input.device(), op, ": ", what, " is on ", w.device(), " but the input is on ",
            input.device());
  bool ok = w.dim() <= input.dim();
  for (int64_t i = 1; ok && i <= w.dim(); ++i) {
    const int64_t ws = w.shape()[w.dim() - i], xs = input.shape()[input.dim() - i];
    ok = ws == xs || ws == 1;
  }
  ZAE_CHECK(ok, op, ": ", what, " of shape ", shape_str(w.shape()), " cannot be broadcast to the input of shape ",
            shape_str(input.shape()));
}

// log(1 + exp(-x)) = log(1 + exp(-|x|)) + max(-x, 0), without overflow.
Tensor softplus_neg(const Tensor& x) { return log(exp(-abs(x)) + 1.0) + clamp(-x, 0.0, std::nullopt); }

}  // namespace

Tensor nll_loss(const Tensor& input_arg, const Tensor& target, const NllLossOptions& opts) {
  const Tensor input = autocast::to_float(input_arg);
  ZAE_CHECK(input.defined() && target.defined(), "nll_loss: undefined ", input.defined() ? "target" : "input",
            " tensor");
  ZAE_CHECK(is_floating(input.dtype()), "nll_loss: input dtype ", input.dtype(),
            " is not supported (expected floating log-probabilities)");
  ZAE_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32, "nll_loss: target dtype ", target.dtype(),
            " is not supported (expected int64 or int32 class indices)");
  ZAE_CHECK(input.dim() >= 1, "nll_loss: input must have shape (C), (N, C) or (N, C, d1, ...), got ",
            shape_str(input.shape()));
  const int64_t class_dim = input.dim() == 1 ? 0 : 1;
  const int64_t classes = input.shape()[class_dim];
  Shape expected;  // the input's shape without the class dim
  for (int64_t d = 0; d < input.dim(); ++d)
    if (d != class_dim) expected.push_back(input.shape()[d]);
  ZAE_CHECK(target.shape() == expected, "nll_loss: target of shape ", shape_str(target.shape()),
            " does not match the input of shape ", shape_str(input.shape()), " (expected target shape ",
            shape_str(expected), ")");
  ZAE_CHECK(target.device() == input.device(), "nll_loss: target is on ", target.device(), " but the input is on ",
            input.device());
  if (opts.weight.defined()) {
    ZAE_CHECK(opts.weight.dim() == 1 && opts.weight.shape()[0] == classes, "nll_loss: weight of shape ",
              shape_str(opts.weight.shape()), " does not match the ", classes, " classes of the input of shape ",
              shape_str(input.shape()), " (expected shape [", classes, "])");
    ZAE_CHECK(is_floating(opts.weight.dtype()), "nll_loss: weight dtype ", opts.weight.dtype(),
              " is not supported (expected a floating dtype)");
    ZAE_CHECK(opts.weight.device() == input.device(), "nll_loss: weight is on ", opts.weight.device(),
              " but the input is on ", input.device());
  }
#ifdef ZAE_WITH_CUDA
  const bool supported = input.device().is_cpu() || input.device().is_cuda();
#else
  const bool supported = input.device().is_cpu();
#endif
  ZAE_CHECK(supported, "nll_loss: not implemented for device ", input.device(), " (dtype ", input.dtype(),
            ") in this build");
  const int64_t ignore = opts.ignore_index;
  Tensor t = target.detach().contiguous();
  const int64_t pos = dispatch_index(t.dtype(), "nll_loss", [&](auto itag) -> int64_t {
    using I = typename decltype(itag)::type;
    if (t.device().is_cpu()) return kernels::cpu::find_invalid_index<I>(t.data<I>(), t.numel(), classes, &ignore);
#ifdef ZAE_WITH_CUDA
    cuda::DeviceGuard guard(t.device().index);
    Tensor scratch = empty({1}, {.dtype = DType::int64, .device = t.device()});
    return kernels::cuda::find_invalid_target<I>(t.data<I>(), t.numel(), classes, &ignore, scratch.data<int64_t>(),
                                                 cuda::current_stream(t.device().index));
#else
    ZAE_FAIL("nll_loss: not implemented for device ", t.device(), " in this build");
#endif
  });
  ZAE_CHECK(pos < 0, "nll_loss: target ", (pos < 0 ? 0 : t.flatten().select(0, pos).item<int64_t>()),
            " at flat position ", pos, " is out of bounds for ", classes, " classes (valid: [0, ", classes - 1,
            "] or ignore_index ", ignore, "; input shape ", shape_str(input.shape()), ")");

  const TensorOptions fopts{.dtype = input.dtype(), .device = input.device()};
  Tensor ignored = eq(t, static_cast<double>(ignore));  // bool, target's shape
  Tensor safe = where(ignored, scalar_tensor(0.0, {.dtype = t.dtype(), .device = t.device()}), t);  // in [0, C)
  Tensor picked = gather(input, class_dim, safe.unsqueeze(class_dim)).squeeze(class_dim);           // target's shape
  Tensor w = opts.weight.defined()
                 ? index_select(opts.weight.detach().to(input.dtype()), 0, safe.flatten()).reshape(expected)
                 : ones(expected, fopts);
  w = where(ignored, scalar_tensor(0.0, fopts), w);  // weight of each target (0 where ignored)
  Tensor loss = neg(picked * w);
  if (opts.reduction == Reduction::mean) return sum(loss) / sum(w);
  return reduce(loss, opts.reduction);
}

Tensor mse_loss(const Tensor& input_arg, const Tensor& target_arg, Reduction reduction) {
  const Tensor input = autocast::to_float(input_arg), target = autocast::to_float(target_arg);
  check_pair("mse_loss", input, target);
  Tensor d = input - target;
  return reduce(d * d, reduction);
}

Tensor l1_loss(const Tensor& input_arg, const Tensor& target_arg, Reduction reduction) {
  const Tensor input = autocast::to_float(input_arg), target = autocast::to_float(target_arg);
  check_pair("l1_loss", input, target);
  return reduce(abs(input - target), reduction);
}

Tensor smooth_l1_loss(const Tensor& input_arg, const Tensor& target_arg, Reduction reduction, double beta) {
  const Tensor input = autocast::to_float(input_arg), target = autocast::to_float(target_arg);
  check_pair("smooth_l1_loss", input, target);
  ZAE_CHECK(beta >= 0.0, "smooth_l1_loss: beta must be non-negative, got ", beta);
  if (beta == 0.0) return l1_loss(input, target, reduction);
  Tensor d = input - target;
  Tensor ad = abs(d);
  return reduce(where(lt(ad, beta), d * d * (0.5 / beta), ad - 0.5 * beta), reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input_arg, const Tensor& target_arg, const BceWithLogitsOptions& opts) {
  const Tensor input = autocast::to_float(input_arg), target = autocast::to_float(target_arg);
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(op, input, target);
  check_broadcast_weight(op, "weight", opts.weight, input);
  check_broadcast_weight(op, "pos_weight", opts.pos_weight, input);
  const Tensor x = input.detach(), y = target.detach();
  const Tensor w = opts.weight.defined() ? opts.weight.detach().to(input.dtype()) : Tensor();
  const Tensor pw = opts.pos_weight.defined() ? opts.pos_weight.detach().to(input.dtype()) : Tensor();
  Tensor loss;  // elementwise, the input's shape
  {
    NoGradGuard no_grad;
    Tensor sp = softplus_neg(x);
    loss = (1.0 - y) * x + (pw.defined() ? ((pw - 1.0) * y + 1.0) * sp : sp);
    if (w.defined()) loss = loss * w;
  }
  // d/dx = w * ((1 + (pw - 1) y) sigmoid(x) - pw y); d/dy = w * ((pw - 1) softplus(-x) - x).
  autograd::record("BinaryCrossEntropyWithLogitsBackward", {input, target}, loss, {x, y, w, pw},
                   [](const Tensor& g, const autograd::BackwardContext& ctx) {
                     const Tensor& xs = ctx.saved[0];
                     const Tensor& ys = ctx.saved[1];
                     const Tensor& ws = ctx.saved[2];
                     const Tensor& pws = ctx.saved[3];
                     const Tensor gw = ws.defined() ? g * ws : g;
                     std::vector<Tensor> grads(2);
                     if (ctx.needs(0)) {
                       Tensor s = sigmoid(xs);
                       Tensor dx = pws.defined() ? ((pws - 1.0) * ys + 1.0) * s - pws * ys : s - ys;
                       grads[0] = sum_to(gw * dx, xs.shape());
                     }
                     if (ctx.needs(1)) {
                       Tensor dy = pws.defined() ? (pws - 1.0) * softplus_neg(xs) - xs : -xs;
                       grads[1] = sum_to(gw * dy, ys.shape());
                     }
                     return grads;
                   });
  return reduce(loss, opts.reduction);
}

}  // namespace zae
