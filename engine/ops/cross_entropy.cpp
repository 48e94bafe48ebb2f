// cross_entropy: torch.nn.functional.cross_entropy with class-index targets, as one
// fused kernel pair (kernels/cpu/cross_entropy.h). Logits (N, C, d1, ...) are
// viewed as rows (M = N * d1 * ..., C) with the class dim moved last; (C) logits
// with a 0-dim target are one row. Saved for backward: the rows of logits, the
// flattened target, the per-row logsumexp (in the compute dtype) and the weights.
// Mean divides by the summed weight of non-ignored targets (NaN when all are ignored).
#include "kernels/cpu/cross_entropy.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/index.h"

namespace zae {

namespace {

// Logits as contiguous rows (M, C), classes last; detached (the op records its own node).
Tensor logits_rows(const Tensor& logits, int64_t rows, int64_t classes) {
  Tensor base = logits.detach();
  if (base.dim() > 2) {
    Shape perm{0};
    for (int64_t d = 2; d < base.dim(); ++d) perm.push_back(d);
    perm.push_back(1);
    base = base.permute(perm);
  }
  return base.contiguous().reshape({rows, classes});
}

// Gradient rows (M, C) back in the layout of logits.
Tensor rows_to_logits(const Tensor& d_rows, const Shape& logits_shape) {
  if (logits_shape.size() <= 2) return d_rows.reshape(logits_shape);
  Shape moved{logits_shape[0]};  // (N, d1, ..., C)
  for (size_t d = 2; d < logits_shape.size(); ++d) moved.push_back(logits_shape[d]);
  moved.push_back(logits_shape[1]);
  Shape perm{0, static_cast<int64_t>(logits_shape.size()) - 1};
  for (size_t d = 1; d + 1 < logits_shape.size(); ++d) perm.push_back(static_cast<int64_t>(d));
  return d_rows.reshape(moved).permute(perm);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opts) {
  ZAE_CHECK(logits.defined() && target.defined(), "cross_entropy: undefined ", logits.defined() ? "target" : "logits",
            " tensor");
  ZAE_CHECK(is_floating(logits.dtype()), "cross_entropy: logits dtype ", logits.dtype(),
            " is not supported (expected a floating dtype)");
  ZAE_CHECK(!is_floating(target.dtype()), "cross_entropy: target dtype ", target.dtype(),
            ": class-probability targets are not supported; pass class indices (int64 or int32)");
  ZAE_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32, "cross_entropy: target dtype ",
            target.dtype(), " is not supported (expected int64 or int32 class indices)");
  ZAE_CHECK(logits.dim() >= 1, "cross_entropy: logits must have shape (C), (N, C) or (N, C, d1, ...), got ",
            shape_str(logits.shape()));
  const bool unbatched = logits.dim() == 1;
  const int64_t classes = logits.shape()[unbatched ? 0 : 1];
  Shape expected;  // target shape: logits' shape without the class dim
  for (int64_t d = 0; d < logits.dim(); ++d)
    if (d != (unbatched ? 0 : 1)) expected.push_back(logits.shape()[d]);
  ZAE_CHECK(target.shape() == expected, "cross_entropy: target of shape ", shape_str(target.shape()),
            " does not match logits of shape ", shape_str(logits.shape()), " (expected target shape ",
            shape_str(expected), ")");
  ZAE_CHECK(opts.label_smoothing >= 0.0 && opts.label_smoothing <= 1.0,
            "cross_entropy: label_smoothing must be in [0, 1], got ", opts.label_smoothing);
  ZAE_CHECK(target.device() == logits.device(), "cross_entropy: target is on ", target.device(), " but logits are on ",
            logits.device());
  Tensor weight;
  if (opts.weight.defined()) {
    ZAE_CHECK(opts.weight.dim() == 1 && opts.weight.shape()[0] == classes, "cross_entropy: weight of shape ",
              shape_str(opts.weight.shape()), " does not match the ", classes, " classes of logits of shape ",
              shape_str(logits.shape()), " (expected shape [", classes, "])");
    ZAE_CHECK(is_floating(opts.weight.dtype()), "cross_entropy: weight dtype ", opts.weight.dtype(),
              " is not supported (expected a floating dtype)");
    ZAE_CHECK(opts.weight.device() == logits.device(), "cross_entropy: weight is on ", opts.weight.device(),
              " but logits are on ", logits.device());
    weight = opts.weight.detach().to(logits.dtype()).contiguous();
  }
  ZAE_CHECK(logits.device().is_cpu(), "cross_entropy: not implemented for device ", logits.device(), " (dtype ",
            logits.dtype(), ") in this build");

  const int64_t rows = shape_numel(expected);
  Tensor x = logits_rows(logits, rows, classes);            // (M, C)
  Tensor t = target.detach().contiguous().reshape({rows});  // (M)
  const int64_t ignore = opts.ignore_index;
  dispatch_index(t.dtype(), "cross_entropy", [&](auto itag) {
    using I = typename decltype(itag)::type;
    const I* p = t.data<I>();
    int64_t pos = kernels::cpu::find_invalid_index<I>(p, rows, classes, &ignore);
    ZAE_CHECK(pos < 0, "cross_entropy: target ", static_cast<int64_t>(p[pos]), " at flat position ", pos,
              " is out of bounds for ", classes, " classes (valid: [0, ", classes - 1, "] or ignore_index ", ignore,
              "; logits shape ", shape_str(logits.shape()), ")");
  });

  const DType acc_dtype = logits.dtype() == DType::float64 ? DType::float64 : DType::float32;
  Tensor lse = empty({rows}, {.dtype = acc_dtype});  // (M)
  const Reduction reduction = opts.reduction;
  Tensor out = reduction == Reduction::none ? empty(expected, {.dtype = logits.dtype()}) : Tensor();
  const kernels::cpu::CrossEntropyParams params{
      .rows = rows, .classes = classes, .ignore_index = ignore, .label_smoothing = opts.label_smoothing};
  kernels::cpu::CrossEntropySums sums = dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    return dispatch_index(t.dtype(), "cross_entropy", [&](auto itag) {
      using I = typename decltype(itag)::type;
      return kernels::cpu::cross_entropy_forward<T, I>(
          x.data<T>(), t.data<I>(), weight.defined() ? weight.data<T>() : nullptr, params,
          static_cast<acc_t<T>*>(lse.raw_data()), out.defined() ? out.data<T>() : nullptr);
    });
  });
  // Gradient scale per row: 1 (none, sum) or 1 / summed weight (mean).
  double grad_scale = 1.0;
  if (reduction == Reduction::sum) {
    out = scalar_tensor(sums.loss, {.dtype = logits.dtype()});
  } else if (reduction == Reduction::mean) {
    out = scalar_tensor(sums.weight == 0.0 ? std::nan("") : sums.loss / sums.weight, {.dtype = logits.dtype()});
    grad_scale = 1.0 / sums.weight;
  }

  Shape logits_shape = logits.shape();
  autograd::record(
      "CrossEntropyBackward", {logits}, out, {x, t, lse, weight},
      [logits_shape, params, reduction, grad_scale](const Tensor& g, const autograd::BackwardContext& ctx) {
        const Tensor& xs = ctx.saved[0];
        const Tensor& ts = ctx.saved[1];
        const Tensor& ls = ctx.saved[2];
        const Tensor& ws = ctx.saved[3];
        Tensor gc = (g.dtype() == xs.dtype() ? g : g.to(xs.dtype())).contiguous();
        const int64_t grad_stride = reduction == Reduction::none ? 1 : 0;
        Tensor d = empty(xs.shape(), {.dtype = xs.dtype()});  // (M, C)
        dispatch_floating(xs.dtype(), "cross_entropy backward", [&](auto tag) {
          using T = typename decltype(tag)::type;
          dispatch_index(ts.dtype(), "cross_entropy backward", [&](auto itag) {
            using I = typename decltype(itag)::type;
            kernels::cpu::cross_entropy_backward<T, I>(xs.data<T>(), ts.data<I>(),
                                                       ws.defined() ? ws.data<T>() : nullptr,
                                                       static_cast<const acc_t<T>*>(ls.raw_data()), gc.data<T>(),
                                                       grad_stride, grad_scale, params, d.data<T>());
          });
        });
        return std::vector<Tensor>{rows_to_logits(d, logits_shape)};
      });
  return out;
}

}  // namespace zae
