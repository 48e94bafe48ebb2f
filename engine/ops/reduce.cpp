// Reductions: sum, mean, var, amax/amin, max/min(dim), argmax/argmin, logsumexp, norm.
//
// Every op validates its dims (empty = all, negative wrap, duplicates rejected), then
// lays the input out as one contiguous (outer, k, inner) problem for the kernels in
// kernels/cpu/reduce.h: when the reduced dims (ignoring size-1 dims) are adjacent in a
// contiguous input (or one dense in another dim order, such as a transpose, whose kept
// dims stay in order) it is used as is; otherwise the kept dims are permuted in front
// of the reduced ones and copied, giving (outer, k, 1). The output is contiguous in its
// logical shape. Reductions without an identity (max, min, their args, the inf-norm)
// reject an empty reduced extent; sum gives 0, mean/var NaN, logsumexp -inf.
// Backward formulas are written with ordinary ops; they restore the reduced dims
// with reshape to the keepdim shape, so they need not know whether keepdim was set.
// Devices: CPU tensors run kernels/cpu/reduce.h; in a CUDA build, CUDA tensors run the
// twins in kernels/cuda/reduce.h on the same (outer, k, inner) plan, on the thread's
// current stream, with scratch from the caching allocator (no host synchronisation).
#include "engine/autocast.h"
#include "engine/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/index.h"
#include "engine/ops/unary.h"
#include "kernels/cpu/reduce.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/reduce.h"
#endif

namespace zae {

namespace {

using kernels::cpu::ReduceDims;

/// A reduction laid out for the kernels.
struct ReducePlan {
  Shape dims;        // reduced dims, wrapped and sorted (empty for a 0-dim input)
  Shape keep_shape;  // input shape with the reduced dims set to 1
  Shape out_shape;   // keep_shape, or the input shape without the reduced dims
  ReduceDims rd;     // (outer, k, inner) over `src`
  Tensor src;        // contiguous, detached; unread when the input is empty
};

void check_input(const Tensor& x, const char* op) {
  ZAE_CHECK(x.defined(), op, ": undefined input tensor");
  // The device switch: each kernel call below branches to the CPU kernel or its CUDA twin.
#ifdef ZAE_WITH_CUDA
  const bool supported = x.device().is_cpu() || x.device().is_cuda();
#else
  const bool supported = x.device().is_cpu();
#endif
  ZAE_CHECK(supported, op, ": not implemented for device ", x.device(), " in this build (dtype ", x.dtype(),
            ", shape ", shape_str(x.shape()), ")");
}

#ifdef ZAE_WITH_CUDA
/// Runs launch(stream, workspace) for plan `p` on x's CUDA device, with the scratch the
/// CUDA reductions need for that shape (freed in stream order after the launch).
template <class Launch>
void run_cuda(const Tensor& x, const ReducePlan& p, Launch&& launch) {
  const int dev = x.device().index;
  cuda::DeviceGuard guard(dev);
  const size_t bytes = kernels::cuda::reduce_workspace_bytes(p.rd);
  Tensor workspace;
  if (bytes > 0)
    workspace = Tensor::empty({static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = x.device()});
  launch(cuda::current_stream(dev), bytes > 0 ? workspace.raw_data() : nullptr);
}
#endif

/// Rejects non-floating inputs before any work (the kernels dispatch on floating dtypes only).
void require_floating(const Tensor& x, const char* op) {
  ZAE_CHECK(is_floating(x.dtype()), op, ": dtype ", x.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
}

/// Wraps and sorts `dims` (empty = all dims); duplicates are an error naming the dims and the shape.
Shape normalize_dims(const Tensor& x, const Shape& dims, const char* op) {
  Shape out;
  if (dims.empty()) {
    out.resize(static_cast<size_t>(x.dim()));
    std::iota(out.begin(), out.end(), int64_t{0});
    return out;
  }
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), false);
  for (int64_t d : dims) {
    int64_t w = x.wrap_dim(d, op);
    ZAE_CHECK(!seen[static_cast<size_t>(w)], op, ": dim ", w, " appears more than once in dims ", shape_str(dims),
              " for a tensor of shape ", shape_str(x.shape()));
    seen[static_cast<size_t>(w)] = true;
    if (x.dim() > 0) out.push_back(w);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The dims of size > 1 of `x` from the largest stride to the smallest, when `x` densely
/// covers its memory in some dim order (contiguous, or a permutation such as a transpose).
std::optional<std::vector<size_t>> memory_order(const Tensor& x) {
  const Shape& shape = x.shape();
  const Shape& strides = x.strides();
  std::vector<size_t> order;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return strides[a] > strides[b]; });
  int64_t expect = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (strides[*it] != expect) return std::nullopt;
    expect *= shape[*it];
  }
  return order;
}

/// Plans the reduction of `x` over `dims_in`. With `ordered_k` the k positions follow the
/// row-major order of the reduced dims (argmax over several dims needs it); otherwise any
/// order is allowed (sums, extrema values).
ReducePlan plan_reduce(const Tensor& x, const Shape& dims_in, bool keepdim, const char* op, bool ordered_k = false) {
  ReducePlan p;
  p.dims = normalize_dims(x, dims_in, op);
  const Shape& shape = x.shape();
  const size_t n = shape.size();
  std::vector<bool> red(n, false);
  for (int64_t d : p.dims) red[static_cast<size_t>(d)] = true;
  p.keep_shape = shape;
  int64_t k = 1;
  for (size_t i = 0; i < n; ++i) {
    if (!red[i]) continue;
    k *= shape[i];
    p.keep_shape[i] = 1;
  }
  for (size_t i = 0; i < n; ++i)
    if (keepdim || !red[i]) p.out_shape.push_back(keepdim && red[i] ? 1 : shape[i]);
  const int64_t nout = shape_numel(p.keep_shape);
  p.rd = ReduceDims{nout, k, 1};
  p.src = x.detach();
  if (x.numel() == 0) return p;  // nothing is read: outer * inner or k is 0
  // No copy when x is dense in some dim order in which the reduced dims form one run,
  // the kept dims keep their logical order (the output is written in that order) and,
  // if asked, so do the reduced dims.
  if (auto order = memory_order(x)) {
    bool ok = true;
    size_t first = order->size(), last = 0, count = 0;
    int64_t prev_kept = -1, prev_red = -1;
    for (size_t b = 0; b < order->size(); ++b) {
      const int64_t d = static_cast<int64_t>((*order)[b]);
      if (red[static_cast<size_t>(d)]) {
        if (count++ == 0) first = b;
        last = b;
        ok = ok && (!ordered_k || d > prev_red);
        prev_red = d;
      } else {
        ok = ok && d > prev_kept;
        prev_kept = d;
      }
    }
    if (ok && (count == 0 || last - first + 1 == count)) {
      int64_t outer = 1;
      for (size_t b = 0; b < first && b < order->size(); ++b) outer *= shape[(*order)[b]];
      p.rd = ReduceDims{outer, k, nout / outer};
      return p;
    }
  }
  // Otherwise copy with the kept dims in front of the reduced ones: (outer, k, 1).
  Shape perm;
  for (size_t i = 0; i < n; ++i)
    if (!red[i]) perm.push_back(static_cast<int64_t>(i));
  for (int64_t d : p.dims) perm.push_back(d);
  p.src = p.src.permute(perm).contiguous();
  return p;
}

void check_nonempty(const Tensor& x, const ReducePlan& p, const char* op) {
  ZAE_CHECK(p.rd.k > 0, op, ": cannot reduce over zero elements (dims ", shape_str(p.dims), " of a tensor of shape ",
            shape_str(x.shape()), "); the operation has no identity");
}

Tensor new_output(const ReducePlan& p, const Tensor& x, DType dtype) {
  return Tensor::empty(p.out_shape, {.dtype = dtype, .device = x.device()});
}

/// sign(x), a non-recording primitive (backward formulas only).
Tensor sign_of(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  unary_into(UnaryOp::sign, out, x, "norm backward");
  return out;
}

/// Gradient of an extremum over dims: g split evenly among the elements equal to the result.
Tensor split_among_ties(const Tensor& g_keep, const Tensor& x, const Tensor& result_keep, const Shape& dims) {
  Tensor mask = eq(x, result_keep).to(x.dtype());
  Tensor count = sum(mask, dims, true);
  return mul(div(g_keep, count), mask);
}

/// The first extremum of plan p over k: values and / or indices (either may be null).
template <bool kMax, class T>
void run_arg_extremum(const Tensor& x, const ReducePlan& p, T* values, int64_t* indices) {
  if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    run_cuda(x, p, [&](cudaStream_t s, void* ws) {
      if constexpr (kMax)
        kernels::cuda::reduce_argmax<T>(p.src.data<T>(), p.rd, values, indices, ws, s);
      else
        kernels::cuda::reduce_argmin<T>(p.src.data<T>(), p.rd, values, indices, ws, s);
    });
#endif
  } else if constexpr (kMax) {
    kernels::cpu::reduce_argmax<T>(p.src.data<T>(), p.rd, values, indices);
  } else {
    kernels::cpu::reduce_argmin<T>(p.src.data<T>(), p.rd, values, indices);
  }
}

/// amax / amin: values over dims.
template <bool kMax>
Tensor extremum_values(const Tensor& x, const Shape& dims, bool keepdim, const char* op, const char* node) {
  check_input(x, op);
  ReducePlan p = plan_reduce(x, dims, keepdim, op);
  check_nonempty(x, p, op);
  Tensor out = new_output(p, x, x.dtype());
  if (out.numel() > 0) {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      run_arg_extremum<kMax, T>(x, p, out.data<T>(), nullptr);
    });
  }
  Shape keep = p.keep_shape, rdims = p.dims;
  autograd::record(node, {x}, out, {x, out}, [keep, rdims](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor& xs = ctx.saved[0];
    if (xs.dim() == 0) return std::vector<Tensor>{g.reshape({})};
    return std::vector<Tensor>{split_among_ties(g.reshape(keep), xs, ctx.saved[1].reshape(keep), rdims)};
  });
  return out;
}

/// max / min along one dim: (values, int64 indices of the first extremum).
template <bool kMax>
std::pair<Tensor, Tensor> extremum_along(const Tensor& x, int64_t dim, bool keepdim, const char* op, const char* node) {
  check_input(x, op);
  int64_t d = x.wrap_dim(dim, op);
  ReducePlan p = plan_reduce(x, {d}, keepdim, op);
  check_nonempty(x, p, op);
  Tensor values = new_output(p, x, x.dtype());
  Tensor indices = new_output(p, x, DType::int64);
  if (values.numel() > 0) {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      run_arg_extremum<kMax, T>(x, p, values.data<T>(), indices.data<int64_t>());
    });
  }
  Shape in_shape = x.shape(), keep = p.keep_shape;
  autograd::record(node, {x}, values, {indices},
                   [in_shape, keep, d](const Tensor& g, const autograd::BackwardContext& ctx) {
                     if (in_shape.empty()) return std::vector<Tensor>{g.reshape({})};
                     Tensor zero = zeros(in_shape, {.dtype = g.dtype(), .device = g.device()});
                     return std::vector<Tensor>{scatter_add(zero, d, ctx.saved[0].reshape(keep), g.reshape(keep))};
                   });
  return {values, indices};
}

/// argmax / argmin along dim, or over the flattened input.
template <bool kMax>
Tensor arg_extremum(const Tensor& x, std::optional<int64_t> dim, bool keepdim, const char* op) {
  check_input(x, op);
  if (dim) {
    int64_t d = x.wrap_dim(*dim, op);
    ReducePlan p = plan_reduce(x, {d}, keepdim, op);
    check_nonempty(x, p, op);
    Tensor idx = new_output(p, x, DType::int64);
    if (idx.numel() > 0) {
      dispatch_all(x.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        run_arg_extremum<kMax, T>(x, p, nullptr, idx.data<int64_t>());
      });
    }
    return idx;
  }
  ReducePlan p = plan_reduce(x, {}, false, op, /*ordered_k=*/true);  // the flattened (row-major) order
  check_nonempty(x, p, op);
  Tensor idx =
      Tensor::empty(keepdim ? Shape(x.shape().size(), 1) : Shape{}, {.dtype = DType::int64, .device = x.device()});
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    run_arg_extremum<kMax, T>(x, p, nullptr, idx.data<int64_t>());
  });
  return idx;
}

}  // namespace

Tensor sum(const Tensor& x_arg, const Shape& dims, bool keepdim) {
  const Tensor x = autocast::to_float(x_arg);
  check_input(x, "sum");
  ReducePlan p = plan_reduce(x, dims, keepdim, "sum");
  const bool floating = is_floating(x.dtype());
  Tensor out = new_output(p, x, floating ? x.dtype() : DType::int64);
  if (out.numel() > 0) {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
        run_cuda(x, p, [&](cudaStream_t s, void* ws) {
          if constexpr (is_floating_v<T>)
            kernels::cuda::reduce_sum<T>(p.src.data<T>(), p.rd, out.data<T>(), ws, s);
          else
            kernels::cuda::reduce_sum_integral<T>(p.src.data<T>(), p.rd, out.data<int64_t>(), ws, s);
        });
#endif
      } else if constexpr (is_floating_v<T>) {
        kernels::cpu::reduce_sum<T>(p.src.data<T>(), p.rd, out.data<T>());
      } else {
        kernels::cpu::reduce_sum_integral<T>(p.src.data<T>(), p.rd, out.data<int64_t>());
      }
    });
  }
  Shape in_shape = x.shape(), keep = p.keep_shape;
  autograd::record("SumBackward", {x}, out, {}, [in_shape, keep](const Tensor& g, const autograd::BackwardContext&) {
    return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x_arg, const Shape& dims, bool keepdim) {
  const Tensor x = autocast::to_float(x_arg);
  check_input(x, "mean");
  require_floating(x, "mean");
  ReducePlan p = plan_reduce(x, dims, keepdim, "mean");
  Tensor out = dispatch_floating(x.dtype(), "mean", [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor o = new_output(p, x, x.dtype());
    if (o.numel() == 0) return o;
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      run_cuda(x, p, [&](cudaStream_t s, void* ws) {
        kernels::cuda::reduce_mean<T>(p.src.data<T>(), p.rd, o.data<T>(), ws, s);
      });
#endif
    } else {
      kernels::cpu::reduce_mean<T>(p.src.data<T>(), p.rd, o.data<T>());
    }
    return o;
  });
  Shape in_shape = x.shape(), keep = p.keep_shape;
  double k = static_cast<double>(p.rd.k);
  autograd::record("MeanBackward", {x}, out, {},
                   [in_shape, keep, k](const Tensor& g, const autograd::BackwardContext&) {
                     return std::vector<Tensor>{div(g.reshape(keep), k).expand(in_shape)};
                   });
  return out;
}

Tensor var(const Tensor& x_arg, const Shape& dims, int64_t correction, bool keepdim) {
  const Tensor x = autocast::to_float(x_arg);
  check_input(x, "var");
  require_floating(x, "var");
  ReducePlan p = plan_reduce(x, dims, keepdim, "var");
  Tensor out = dispatch_floating(x.dtype(), "var", [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor o = new_output(p, x, x.dtype());
    if (o.numel() == 0) return o;
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      run_cuda(x, p, [&](cudaStream_t s, void* ws) {
        kernels::cuda::reduce_var<T>(p.src.data<T>(), p.rd, correction, o.data<T>(), ws, s);
      });
#endif
    } else {
      kernels::cpu::reduce_var<T>(p.src.data<T>(), p.rd, correction, o.data<T>());
    }
    return o;
  });
  Shape keep = p.keep_shape, rdims = p.dims;
  double scale = 2.0 / std::max(0.0, static_cast<double>(p.rd.k) - static_cast<double>(correction));
  autograd::record("VarBackward", {x}, out, {x},
                   [keep, rdims, scale](const Tensor& g, const autograd::BackwardContext& ctx) {
                     const Tensor& xs = ctx.saved[0];
                     Tensor centered = sub(xs, mean(xs, rdims, true));
                     return std::vector<Tensor>{mul(centered, mul(g.reshape(keep), scale))};
                   });
  return out;
}

Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) {
  return extremum_values<true>(x, dims, keepdim, "amax", "AmaxBackward");
}
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) {
  return extremum_values<false>(x, dims, keepdim, "amin", "AminBackward");
}
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along<true>(x, dim, keepdim, "max", "MaxBackward");
}
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along<false>(x, dim, keepdim, "min", "MinBackward");
}
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum<true>(x, dim, keepdim, "argmax");
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum<false>(x, dim, keepdim, "argmin");
}

Tensor logsumexp(const Tensor& x_arg, const Shape& dims, bool keepdim) {
  const Tensor x = autocast::to_float(x_arg);
  check_input(x, "logsumexp");
  require_floating(x, "logsumexp");
  ReducePlan p = plan_reduce(x, dims, keepdim, "logsumexp");
  Tensor out = dispatch_floating(x.dtype(), "logsumexp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor o = new_output(p, x, x.dtype());
    if (o.numel() == 0) return o;
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      run_cuda(x, p, [&](cudaStream_t s, void* ws) {
        kernels::cuda::reduce_logsumexp<T>(p.src.data<T>(), p.rd, o.data<T>(), ws, s);
      });
#endif
    } else {
      kernels::cpu::reduce_logsumexp<T>(p.src.data<T>(), p.rd, o.data<T>());
    }
    return o;
  });
  Shape keep = p.keep_shape;
  autograd::record("LogsumexpBackward", {x}, out, {x, out},
                   [keep](const Tensor& g, const autograd::BackwardContext& ctx) {
                     Tensor w = exp(sub(ctx.saved[0], ctx.saved[1].reshape(keep)));
                     return std::vector<Tensor>{mul(w, g.reshape(keep))};
                   });
  return out;
}

Tensor norm(const Tensor& x_arg, double p, const Shape& dims, bool keepdim) {
  const Tensor x = autocast::to_float(x_arg);
  check_input(x, "norm");
  require_floating(x, "norm");
  ZAE_CHECK(p > 0.0, "norm: p must be > 0 or infinity, got ", p, " (input shape ", shape_str(x.shape()), ")");
  const bool inf = std::isinf(p);
  ReducePlan plan = plan_reduce(x, dims, keepdim, "norm");
  if (inf) check_nonempty(x, plan, "norm (p = inf)");
  Tensor out = dispatch_floating(x.dtype(), "norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor o = new_output(plan, x, x.dtype());
    if (o.numel() == 0) return o;
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      run_cuda(x, plan, [&](cudaStream_t s, void* ws) {
        kernels::cuda::reduce_norm<T>(plan.src.data<T>(), plan.rd, p, o.data<T>(), ws, s);
      });
#endif
    } else {
      kernels::cpu::reduce_norm<T>(plan.src.data<T>(), plan.rd, p, o.data<T>());
    }
    return o;
  });
  Shape keep = plan.keep_shape, rdims = plan.dims;
  autograd::record("NormBackward", {x}, out, {x, out},
                   [keep, rdims, p, inf](const Tensor& g, const autograd::BackwardContext& ctx) {
                     const Tensor& xs = ctx.saved[0];
                     Tensor n = ctx.saved[1].reshape(keep);
                     Tensor gk = g.reshape(keep);
                     if (inf) {
                       Tensor share = split_among_ties(gk, abs(xs), n, rdims);
                       return std::vector<Tensor>{mul(sign_of(xs), share)};
                     }
                     if (p == 1.0) return std::vector<Tensor>{mul(sign_of(xs), gk)};
                     if (p == 2.0) return std::vector<Tensor>{mul(xs, masked_fill(div(gk, n), eq(n, 0.0), 0.0))};
                     // d/dx (sum |x|^p)^(1/p) = sign(x) |x|^(p-1) / norm^(p-1); 0 where norm == 0.
                     Tensor scaled = mul(sign_of(xs), pow(abs(xs), p - 1.0));
                     if (p < 1.0) scaled = masked_fill(scaled, eq(xs, 0.0), 0.0);
                     Tensor scale = masked_fill(div(gk, pow(n, p - 1.0)), eq(n, 0.0), 0.0);
                     return std::vector<Tensor>{mul(scaled, scale)};
                   });
  return out;
}

}  // namespace zae
