// cross_entropy: torch.nn.functional.cross_entropy with class-index targets, as one
// fused kernel pair (kernels/cpu/cross_entropy.h). Logits (N, C, d1, ...) are
// viewed as rows (M = N * d1 * ..., C) with the class dim moved last; (C) logits
// with a 0-dim target are one row. Saved for backward: the rows of logits, the
// flattened target, the per-row logsumexp (in the compute dtype) and the weights.
// Mean divides by the summed weight of non-ignored targets (NaN when all are ignored).
// Devices: CPU kernels, and in a CUDA build their CUDA twins (kernels/cuda/
// cross_entropy.h). On CUDA the sum / mean and the mean's gradient scale (1 / summed
// weight) stay on the device (saved as a one-element tensor); the only host
// synchronisation is the target validation, so that a bad target is a clear error.
#include "engine/autocast.h"
#include "kernels/cpu/cross_entropy.h"

#include <cmath>

#include "engine/ops/backend.h"
#include "engine/autograd/node.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/cross_entropy.h"
#endif

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

// Position of the first target (contiguous, `rows` values) outside [0, classes) that is
// not `ignore`, or -1.
int64_t invalid_target_position(const Tensor& t, int64_t rows, int64_t classes, int64_t ignore) {
  return dispatch_index(t.dtype(), "cross_entropy", [&](auto itag) -> int64_t {
    using I = typename decltype(itag)::type;
    if (t.device().is_cpu()) return kernels::cpu::find_invalid_index<I>(t.data<I>(), rows, classes, &ignore);
#ifdef ZAE_WITH_CUDA
    cuda::DeviceGuard guard(t.device().index);
    Tensor scratch = empty({1}, {.dtype = DType::int64, .device = t.device()});
    return kernels::cuda::find_invalid_target<I>(t.data<I>(), rows, classes, &ignore, scratch.data<int64_t>(),
                                                 cuda::current_stream(t.device().index));
#else
    ZAE_FAIL("cross_entropy: not implemented for device ", t.device(), " in this build");
#endif
  });
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

// The CUDA path after validation: forward, device-side sum / mean, and the graph node.
// x (M, C) and t (M) are contiguous rows; lse (M) and out (none: the target's shape)
// are allocated on the device.
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& x, const Tensor& t, const Tensor& weight,
                          const Tensor& lse, Tensor out, const kernels::cpu::CrossEntropyParams& params,
                          Reduction reduction) {
#ifdef ZAE_WITH_CUDA
  const Device device = logits.device();
  cuda::DeviceGuard guard(device.index);
  cudaStream_t stream = cuda::current_stream(device.index);
  const int64_t rows = params.rows;
  const TensorOptions f64{.dtype = DType::float64, .device = device};
  Tensor row_sums, grad_scale;  // (2, M) per-row loss and weight; (1) the mean's 1 / summed weight
  if (reduction != Reduction::none) {
    row_sums = empty({2, rows}, f64);
    grad_scale = empty({1}, f64);
    out = empty({}, {.dtype = logits.dtype(), .device = device});
  }
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_index(t.dtype(), "cross_entropy", [&](auto itag) {
      using I = typename decltype(itag)::type;
      double* row_loss = row_sums.defined() ? row_sums.data<double>() : nullptr;
      kernels::cuda::cross_entropy_forward<T, I>(
          x.data<T>(), t.data<I>(), weight.defined() ? weight.data<T>() : nullptr, params,
          static_cast<acc_t<T>*>(lse.raw_data()), reduction == Reduction::none ? out.data<T>() : nullptr, row_loss,
          row_loss != nullptr ? row_loss + rows : nullptr, stream);
    });
    if (reduction != Reduction::none) {
      Tensor scratch = empty({kernels::cuda::cross_entropy_reduce_scratch(rows)}, f64);
      kernels::cuda::cross_entropy_reduce<T>(row_sums.data<double>(), row_sums.data<double>() + rows, rows,
                                             reduction == Reduction::mean, out.data<T>(), grad_scale.data<double>(),
                                             scratch.data<double>(), stream);
    }
  });

  Shape logits_shape = logits.shape();
  autograd::record(
      "CrossEntropyBackward", {logits}, out, {x, t, lse, weight, grad_scale},
      [logits_shape, params, reduction](const Tensor& g, const autograd::BackwardContext& ctx) {
        const Tensor& xs = ctx.saved[0];
        const Tensor& ts = ctx.saved[1];
        const Tensor& ls = ctx.saved[2];
        const Tensor& ws = ctx.saved[3];
        const Tensor& scale = ctx.saved[4];
        Tensor gc = (g.dtype() == xs.dtype() ? g : g.to(xs.dtype())).contiguous();
        const int64_t grad_stride = reduction == Reduction::none ? 1 : 0;
        cuda::DeviceGuard guard(xs.device().index);
        Tensor d = empty(xs.shape(), {.dtype = xs.dtype(), .device = xs.device()});  // (M, C)
        const DType acc_dtype = xs.dtype() == DType::float64 ? DType::float64 : DType::float32;
        Tensor scratch = ws.defined() ? empty({1}, {.dtype = acc_dtype, .device = xs.device()}) : Tensor();
        dispatch_floating(xs.dtype(), "cross_entropy backward", [&](auto tag) {
          using T = typename decltype(tag)::type;
          dispatch_index(ts.dtype(), "cross_entropy backward", [&](auto itag) {
            using I = typename decltype(itag)::type;
            kernels::cuda::cross_entropy_backward<T, I>(
                xs.data<T>(), ts.data<I>(), ws.defined() ? ws.data<T>() : nullptr,
                static_cast<const acc_t<T>*>(ls.raw_data()), gc.data<T>(), grad_stride,
                scale.defined() ? scale.data<double>() : nullptr, params, d.data<T>(),
                scratch.defined() ? static_cast<acc_t<T>*>(scratch.raw_data()) : nullptr,
                cuda::current_stream(xs.device().index));
          });
        });
        return std::vector<Tensor>{rows_to_logits(d, logits_shape)};
      });
  return out;
#else
  (void)x, (void)t, (void)weight, (void)lse, (void)out, (void)params, (void)reduction;
  ZAE_FAIL("cross_entropy: not implemented for device ", logits.device(), " in this build");
#endif
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_arg, const Tensor& target, const CrossEntropyOptions& opts) {
  const Tensor logits = autocast::to_float(logits_arg);
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
  ZAE_CHECK(has_kernels_for(logits.device()), "cross_entropy: not implemented for device ", logits.device(),
            " (dtype ", logits.dtype(), ") in this build");

  const int64_t rows = shape_numel(expected);
  Tensor x = logits_rows(logits, rows, classes);            // (M, C)
  Tensor t = target.detach().contiguous().reshape({rows});  // (M)
  const int64_t ignore = opts.ignore_index;
  const int64_t pos = invalid_target_position(t, rows, classes, ignore);
  ZAE_CHECK(pos < 0, "cross_entropy: target ", (pos < 0 ? 0 : t.select(0, pos).item<int64_t>()), " at flat position ",
            pos, " is out of bounds for ", classes, " classes (valid: [0, ", classes - 1, "] or ignore_index ", ignore,
            "; logits shape ", shape_str(logits.shape()), ")");

  const Device device = logits.device();
  const DType acc_dtype = logits.dtype() == DType::float64 ? DType::float64 : DType::float32;
  Tensor lse = empty({rows}, {.dtype = acc_dtype, .device = device});  // (M)
  const Reduction reduction = opts.reduction;
  Tensor out = reduction == Reduction::none ? empty(expected, {.dtype = logits.dtype(), .device = device}) : Tensor();
  const kernels::cpu::CrossEntropyParams params{
      .rows = rows, .classes = classes, .ignore_index = ignore, .label_smoothing = opts.label_smoothing};
  if (device.is_cuda()) return cross_entropy_cuda(logits, x, t, weight, lse, out, params, reduction);
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
