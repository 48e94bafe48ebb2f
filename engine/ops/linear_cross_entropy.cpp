// linear_cross_entropy: cross_entropy(hidden @ weight^T + bias, target) fused over chunks
// of rows, so the (N, V) logits (and their gradient) are never stored whole: the
// classifier head of a language model, where V (GPT-2: 50257) times N (B * T: 16K) is
// the largest tensor of the step.
//
// Per chunk of R rows (forward):
//   logits_c (R, V) = hidden_c @ W^T (+ b)     the matmul (linear), in the compute dtype
//   lse_c, loss rows                           the cross-entropy kernels, in float32 / float64
// and, only when a gradient is needed (grad mode on and an input requires grad), with
// upstream gradient 1 and the mean's 1 / count:
//   dlogits_c (R, V)  = softmax(logits_c) - onehot(target_c)   (times 1 / count for mean)
//   dhidden_c (R, C)  = dlogits_c @ W           written into its rows of dhidden (N, C)
//   dW (V, C)        += dlogits_c^T @ hidden_c  (GEMM with beta = 1, or a float32 sum)
//   db (V)           += colsum(dlogits_c)
// after which the chunk's logits and dlogits are dropped. The mean's divisor (the count
// of non-ignored rows) is counted before the first chunk.
// Reduction none returns the per-row losses (the target's shape) and cannot know the
// upstream gradient in advance: its node saves the (cast) operands instead and its
// backward runs the chunks again with the per-row upstream gradient (recomputation).
//
// Invariants:
// - Mean and sum: the graph node saves dhidden, dW and db (already in the inputs'
//   dtypes), never logits; its backward multiplies them by the upstream scalar gradient.
//   Peak extra memory: a chunk's logits and dlogits besides dhidden (N, C), dW (V, C) and db (V).
// - Each chunk also costs a pass over dW (V, C) (for 16-bit compute: the chunk's product
//   and a float32 add); chunks much shorter than C rows spend more on that than on their
//   logits. chunk_rows = 0 takes max(rows whose float32 logits fill 32 MiB, 2 C) rows, so
//   the dW traffic per chunk stays at most half the chunk's logits traffic (GPT-2 124M:
//   1536 of 16384 rows, 11 chunks, 309 MB of float32 logits each instead of 3.3 GB).
// - Autocast (engine/autocast.h): with a low dtype active, float32 hidden / weight / bias
//   are cast to it, the matmuls run in it (accumulating in float32, as linear does), the
//   loss runs in float32 and dW / db accumulate over the chunks in float32. The loss is
//   float32 for 16-bit compute (float64 for float64). Gradients come back in the dtypes
//   of the inputs as given.
// - Targets are validated (in [0, V) or ignore_index) before any kernel indexes with
//   them; a bad one is a clear error naming its value and row.
// - Mean over zero non-ignored rows is NaN (as PyTorch and cross_entropy); its gradients
//   are then 0.
// - Devices: CPU (kernels/cpu/gemm.h, kernels/cpu/cross_entropy.h) and, in a CUDA
//   build, their CUDA twins on the current stream of the inputs' device; on CUDA the
//   loss, the count and the mean's scale stay on the device (only the target check
//   synchronises, as in cross_entropy).
#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/binary.h"
#include "engine/ops/copy.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/gemm_common.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/index.h"

#include <algorithm>
#include <cmath>

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "engine/cuda_matmul.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/gemm.h"
#endif

namespace zae {

namespace {

constexpr const char* kOp = "linear_cross_entropy";
constexpr int64_t kAutoChunkBytes = int64_t{32} << 20;  // a chunk's float32 logits, chunk_rows = 0

// The cross-entropy dtype is float32 or float64 only (16-bit logits are widened first).
template <class T>
struct CeTag {
  using type = T;
};
template <class Fn>
void dispatch_ce(DType dt, Fn&& fn) {
  if (dt == DType::float64) {
    fn(CeTag<double>{});
  } else {
    fn(CeTag<float>{});
  }
}

// c (m, n) = op(a) @ op(b) + beta * c for dense row-major 2-D tensors of one dtype and
// device (op(x) = x^T when trans_x). c is write-only when beta == 0.
void gemm_into(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float beta) {
  const int64_t m = c.size(0), n = c.size(1), k = trans_a ? a.size(0) : a.size(1);
  const int64_t lda = a.size(1), ldb = b.size(1), ldc = n;
  if (c.device().is_cpu()) {
    dispatch_floating(c.dtype(), kOp, [&](auto tag) {
      using T = typename decltype(tag)::type;
      kernels::cpu::gemm<T>(trans_a, trans_b, m, n, k, 1.0f, static_cast<const T*>(a.raw_data()), lda, 0,
                            static_cast<const T*>(b.raw_data()), ldb, 0, beta, static_cast<T*>(c.raw_data()), ldc, 0,
                            1);
    });
    return;
  }
#ifdef ZAE_WITH_CUDA
  cuda::DeviceGuard guard(c.device().index);
  kernels::cuda::gemm(m, n, k, trans_a, trans_b, a.raw_data(), lda, b.raw_data(), ldb, c.raw_data(), ldc,
                      kernels::cuda::GemmBatch{}, 1.0f, beta, cuda_gemm_type(c.dtype(), kOp), cuda::allow_tf32(),
                      kernels::cuda::GemmEpilogue::none, nullptr, cuda::current_stream(c.device().index));
#else
  ZAE_FAIL(kOp, ": not implemented for device ", c.device(), " in this build");
#endif
}

// Position of the first target (contiguous, n values) outside [0, classes) that is not
// `ignore`, or -1.
int64_t invalid_target_position(const Tensor& t, int64_t n, int64_t classes, int64_t ignore) {
  return dispatch_index(t.dtype(), kOp, [&](auto itag) -> int64_t {
    using I = typename decltype(itag)::type;
    if (t.device().is_cpu()) return kernels::cpu::find_invalid_index<I>(t.data<I>(), n, classes, &ignore);
#ifdef ZAE_WITH_CUDA
    cuda::DeviceGuard guard(t.device().index);
    Tensor scratch = empty({1}, {.dtype = DType::int64, .device = t.device()});
    return kernels::cuda::find_invalid_target<I>(t.data<I>(), n, classes, &ignore, scratch.data<int64_t>(),
                                                 cuda::current_stream(t.device().index));
#else
    ZAE_FAIL(kOp, ": not implemented for device ", t.device(), " in this build");
#endif
  });
}

// Number of targets (contiguous, n values) that are not `ignore` (CPU).
int64_t count_valid_cpu(const Tensor& t, int64_t n, int64_t ignore) {
  return dispatch_index(t.dtype(), kOp, [&](auto itag) -> int64_t {
    using I = typename decltype(itag)::type;
    const I* p = t.data<I>();
    int64_t count = 0;
    for (int64_t r = 0; r < n; ++r) count += static_cast<int64_t>(p[r]) != ignore ? 1 : 0;
    return count;
  });
}

void check_inputs(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& target,
                  const LinearCrossEntropyOptions& opts) {
  ZAE_CHECK(hidden.defined() && weight.defined() && target.defined(), kOp, ": undefined ",
            !hidden.defined() ? "hidden" : (!weight.defined() ? "weight" : "target"), " tensor");
  ZAE_CHECK(is_floating(hidden.dtype()), kOp, ": hidden dtype ", hidden.dtype(),
            " is not supported (expected a floating dtype)");
  ZAE_CHECK(hidden.dim() >= 2, kOp, ": hidden must have shape (N, C) or (..., C), got ", shape_str(hidden.shape()));
  const int64_t c = hidden.size(-1);
  ZAE_CHECK(weight.dim() == 2 && weight.size(1) == c && weight.size(0) >= 1, kOp, ": weight of shape ",
            shape_str(weight.shape()), " does not match hidden of shape ", shape_str(hidden.shape()),
            " (expected (V, ", c, ") with V >= 1)");
  // Under autocast, float32 operands are cast to the low dtype first (as linear does).
  auto effective = [](DType dt) { return autocast::enabled() && dt == DType::float32 ? autocast::low_dtype() : dt; };
  ZAE_CHECK(effective(weight.dtype()) == effective(hidden.dtype()), kOp, ": dtype mismatch: hidden is ",
            hidden.dtype(), " but weight is ", weight.dtype());
  ZAE_CHECK(weight.device() == hidden.device(), kOp, ": weight is on ", weight.device(), " but hidden is on ",
            hidden.device());
  const int64_t v = weight.size(0);
  if (bias.defined()) {
    ZAE_CHECK(bias.dim() == 1 && bias.size(0) == v, kOp, ": bias of shape ", shape_str(bias.shape()),
              " does not match weight of shape ", shape_str(weight.shape()), " (expected [", v, "])");
    ZAE_CHECK(effective(bias.dtype()) == effective(hidden.dtype()), kOp, ": dtype mismatch: hidden is ",
              hidden.dtype(), " but bias is ", bias.dtype());
    ZAE_CHECK(bias.device() == hidden.device(), kOp, ": bias is on ", bias.device(), " but hidden is on ",
              hidden.device());
  }
  ZAE_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32, kOp, ": target dtype ", target.dtype(),
            " is not supported (expected int64 or int32 class indices)");
  const Shape rows_shape(hidden.shape().begin(), hidden.shape().end() - 1);
  ZAE_CHECK(target.shape() == rows_shape, kOp, ": target of shape ", shape_str(target.shape()),
            " does not match hidden of shape ", shape_str(hidden.shape()), " (expected target shape ",
            shape_str(rows_shape), ")");
  ZAE_CHECK(target.device() == hidden.device(), kOp, ": target is on ", target.device(), " but hidden is on ",
            hidden.device());
  ZAE_CHECK(opts.chunk_rows >= 0, kOp, ": chunk_rows must be >= 0 (0: automatic), got ", opts.chunk_rows);
  ZAE_CHECK(has_kernels_for(hidden.device()), kOp, ": not implemented for device ", hidden.device(), " (dtype ",
            hidden.dtype(), ") in this build");
}

// The op's operands after autocast, as dense rows; targets validated.
struct Prepared {
  Tensor h, w, b, t;  // (N, C), (V, C), (V) or undefined, all in the compute dtype; (N) targets
  int64_t n = 0, c = 0, v = 0;
};

Prepared prepare(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& target,
                 int64_t ignore) {
  NoGradGuard no_grad;
  Prepared p;
  const Tensor h_low = autocast::to_low(hidden.detach());
  p.c = hidden.size(-1);
  p.w = dense_data(autocast::to_low(weight.detach()));  // (V, C)
  p.v = p.w.size(0);
  if (bias.defined()) p.b = dense_data(autocast::to_low(bias.detach()));  // (V)
  p.n = shape_numel(target.shape());
  p.h = dense_data(h_low).reshape({p.n, p.c});       // (N, C)
  p.t = dense_data(target.detach()).reshape({p.n});  // (N)
  const int64_t bad = invalid_target_position(p.t, p.n, p.v, ignore);
  ZAE_CHECK(bad < 0, kOp, ": target ", (bad < 0 ? 0 : p.t.select(0, bad).item<int64_t>()), " at row ", bad,
            " is out of bounds for ", p.v, " classes (valid: [0, ", p.v - 1, "] or ignore_index ", ignore,
            "; hidden shape ", shape_str(hidden.shape()), ")");
  return p;
}

// What one pass over the chunks computes.
struct PassRequest {
  Reduction reduction = Reduction::mean;
  int64_t ignore = -100;
  int64_t chunk_rows = 0;
  bool want_loss = true;  // the loss: a scalar (mean / sum) or per-row (none)
  bool grad_hidden = false, grad_weight = false, grad_bias = false;
  Tensor upstream;  // (N) per-row upstream gradient (reduction none's backward), or undefined: 1 (times 1 / count)
};

// The loss and, when asked, the three gradients (in the compute / accumulation dtypes).
struct PassResult {
  Tensor loss;                        // () or (N) in the loss dtype; undefined unless want_loss
  Tensor d_hidden, d_weight, d_bias;  // (N, C), (V, C), (V); undefined when not asked
};

// One pass over the rows of p in chunks (see the file header). No graph, no autocast.
PassResult run_chunks(const Prepared& p, const PassRequest& rq) {
  NoGradGuard no_grad;
  autocast::Suspend no_autocast;
  const bool need_grad = rq.grad_hidden || rq.grad_weight || rq.grad_bias;
  const bool mean = rq.reduction == Reduction::mean, per_row = rq.reduction == Reduction::none;
  const DType cd = p.h.dtype();              // the matmuls' dtype
  const DType ce_dt = accumulate_dtype(cd);  // the loss's (float32 or float64)
  const Device device = p.h.device();
  const int64_t n = p.n, c = p.c, v = p.v, ignore = rq.ignore;
  const Tensor& h = p.h;
  const Tensor& w = p.w;
  const Tensor& t = p.t;

  int64_t chunk = rq.chunk_rows;
  if (chunk == 0) chunk = std::max<int64_t>({1, kAutoChunkBytes / (v * 4), 2 * c});
  chunk = std::max<int64_t>(1, std::min(chunk, n));

  const TensorOptions cd_opts{.dtype = cd, .device = device}, ce_opts{.dtype = ce_dt, .device = device};
  // Gradient accumulators. dW accumulates in place in the compute dtype when that is
  // float32 / float64; 16-bit chunk products are summed into float32.
  const bool dw_in_place = cd == ce_dt;
  PassResult res;
  if (rq.grad_hidden) res.d_hidden = empty({n, c}, cd_opts);  // (N, C), every row written once
  if (rq.grad_weight) res.d_weight = dw_in_place ? empty({v, c}, cd_opts) : zeros({v, c}, ce_opts);  // (V, C)
  if (rq.grad_bias) res.d_bias = zeros({v}, ce_opts);                                             // (V)
  if (rq.want_loss && per_row) res.loss = empty({n}, ce_opts);                                     // (N)
  const Tensor upstream = rq.upstream.defined() ? dense_data(rq.upstream.to(ce_dt)) : Tensor();  // (N)

  // The mean's scale, known before the first chunk's gradient.
  double scale = 1.0;               // CPU
  Tensor scale_dev, row_sums, one;  // CUDA: (1) double, (2, N) per-row loss and weight, (1) upstream 1
  const bool scalar_loss = rq.want_loss && !per_row;
  if (device.is_cpu()) {
    if (mean && need_grad) scale = 1.0 / static_cast<double>(count_valid_cpu(t, n, ignore));
  } else {
    if (scalar_loss) row_sums = zeros({2, std::max<int64_t>(n, 1)}, {.dtype = DType::float64, .device = device});
    one = ones({1}, ce_opts);
    if (mean && need_grad) {
      Tensor count = sum(ne(t, static_cast<double>(ignore)).to(DType::float64));
      scale_dev = div(ones({}, {.dtype = DType::float64, .device = device}), count).reshape({1});
    }
  }

  double loss_sum = 0.0, weight_sum = 0.0;  // CPU
  bool first = true;
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const Tensor hc = h.narrow(0, r0, rows);                       // (R, C)
    const Tensor tc = t.narrow(0, r0, rows);                       // (R)
    Tensor x = linear(hc, w, p.b);                                 // (R, V) the logits in cd
    if (cd != ce_dt) x = x.to(ce_dt);                              // (R, V) in ce_dt
    Tensor lse = empty({rows}, ce_opts);                           // (R)
    Tensor dx = need_grad ? empty({rows, v}, ce_opts) : Tensor();  // (R, V) ce_dt
    const kernels::cpu::CrossEntropyParams params{.rows = rows, .classes = v, .ignore_index = ignore};
    dispatch_ce(ce_dt, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* loss_rows = rq.want_loss && per_row ? res.loss.data<T>() + r0 : nullptr;
      const T* up = upstream.defined() ? upstream.data<T>() + r0 : nullptr;
      dispatch_index(t.dtype(), kOp, [&](auto itag) {
        using I = typename decltype(itag)::type;
        if (device.is_cpu()) {
          const kernels::cpu::CrossEntropySums s = kernels::cpu::cross_entropy_forward<T, I>(
              x.data<T>(), tc.data<I>(), nullptr, params, lse.data<T>(), loss_rows);
          loss_sum += s.loss;
          weight_sum += s.weight;
          if (need_grad) {
            const T g_one = T(1);
            kernels::cpu::cross_entropy_backward<T, I>(x.data<T>(), tc.data<I>(), nullptr, lse.data<T>(),
                                                       up != nullptr ? up : &g_one, up != nullptr ? 1 : 0, scale,
                                                       params, dx.data<T>());
          }
          return;
        }
#ifdef ZAE_WITH_CUDA
        cuda::DeviceGuard guard(device.index);
        cudaStream_t stream = cuda::current_stream(device.index);
        double* row_loss = row_sums.defined() ? row_sums.data<double>() + r0 : nullptr;
        double* row_weight = row_sums.defined() ? row_sums.data<double>() + row_sums.size(1) + r0 : nullptr;
        kernels::cuda::cross_entropy_forward<T, I>(x.data<T>(), tc.data<I>(), nullptr, params, lse.data<T>(),
                                                   loss_rows, row_loss, row_weight, stream);
        if (need_grad)
          kernels::cuda::cross_entropy_backward<T, I>(
              x.data<T>(), tc.data<I>(), nullptr, lse.data<T>(), up != nullptr ? up : one.data<T>(),
              up != nullptr ? 1 : 0, scale_dev.defined() ? scale_dev.data<double>() : nullptr, params, dx.data<T>(),
              nullptr, stream);
#endif
      });
    });
    if (!need_grad) continue;
    x = Tensor();  // the chunk's logits go before its gradient GEMMs run
    const Tensor dxc = cd == ce_dt ? dx : dx.to(cd);  // (R, V) cd
    if (rq.grad_hidden) gemm_into(res.d_hidden.narrow(0, r0, rows), dxc, false, w, false, 0.0f);
    if (rq.grad_weight) {
      if (dw_in_place) {
        gemm_into(res.d_weight, dxc, true, hc, false, first ? 0.0f : 1.0f);
      } else {
        Tensor part = empty({v, c}, cd_opts);  // (V, C) this chunk's dW in the low dtype
        gemm_into(part, dxc, true, hc, false, 0.0f);
        binary_into(BinaryOp::add, res.d_weight, res.d_weight, part, 1.0, kOp);
      }
    }
    if (rq.grad_bias) binary_into(BinaryOp::add, res.d_bias, res.d_bias, sum(dx, {0}), 1.0, kOp);
    first = false;
  }
  if (rq.grad_weight && first) res.d_weight.zero_();  // no rows
  if (!scalar_loss) return res;

  if (device.is_cpu()) {
    const double value = !mean ? loss_sum : (weight_sum == 0.0 ? std::nan("") : loss_sum / weight_sum);
    res.loss = scalar_tensor(value, {.dtype = ce_dt});
    return res;
  }
#ifdef ZAE_WITH_CUDA
  cuda::DeviceGuard guard(device.index);
  cudaStream_t stream = cuda::current_stream(device.index);
  res.loss = empty({}, ce_opts);
  const int64_t rs = row_sums.size(1);
  const TensorOptions f64{.dtype = DType::float64, .device = device};
  Tensor scratch = empty({kernels::cuda::cross_entropy_reduce_scratch(rs)}, f64);
  Tensor grad_scale = empty({1}, f64);  // unused here: the mean's scale was formed before the chunks
  dispatch_ce(ce_dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::cuda::cross_entropy_reduce<T>(row_sums.data<double>(), row_sums.data<double>() + rs, rs, mean,
                                           res.loss.data<T>(), grad_scale.data<double>(), scratch.data<double>(),
                                           stream);
  });
#endif
  return res;
}

// `g` in the dtype of `input` (no graph: a plain cast); undefined stays undefined.
Tensor as_dtype_of(const Tensor& g, const Tensor& input) {
  NoGradGuard no_grad;
  return !g.defined() || g.dtype() == input.dtype() ? g : g.to(input.dtype());
}

// reduction none: per-row losses now; the backward recomputes each chunk's logits with
// the per-row upstream gradient. Saves the prepared operands, not gradients.
Tensor linear_cross_entropy_rows(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& target,
                                 const LinearCrossEntropyOptions& opts) {
  const Prepared p = prepare(hidden, weight, bias, target, opts.ignore_index);
  PassRequest rq;
  rq.reduction = Reduction::none;
  rq.ignore = opts.ignore_index;
  rq.chunk_rows = opts.chunk_rows;
  Tensor out = run_chunks(p, rq).loss.reshape(target.shape());
  const bool has_bias = p.b.defined();
  const Shape hidden_shape = hidden.shape();
  const DType dt_hidden = hidden.dtype(), dt_weight = weight.dtype();
  const DType dt_bias = has_bias ? bias.dtype() : DType::float32;
  const int64_t n = p.n, c = p.c, v = p.v;
  autograd::record(
      "LinearCrossEntropyRowsBackward", {hidden, weight, bias}, out, {p.h, p.w, p.b, p.t},
      [rq, has_bias, hidden_shape, dt_hidden, dt_weight, dt_bias, n, c, v](const Tensor& g,
                                                                          const autograd::BackwardContext& ctx) {
        const Prepared sp{.h = ctx.saved[0], .w = ctx.saved[1], .b = ctx.saved[2], .t = ctx.saved[3], .n = n, .c = c,
                          .v = v};
        PassRequest brq = rq;
        brq.want_loss = false;
        brq.grad_hidden = ctx.needs(0);
        brq.grad_weight = ctx.needs(1);
        brq.grad_bias = has_bias && ctx.needs(2);
        brq.upstream = g.reshape({n});
        PassResult r = run_chunks(sp, brq);
        NoGradGuard no_grad;
        std::vector<Tensor> grads(3);
        if (r.d_hidden.defined()) grads[0] = r.d_hidden.to(dt_hidden).reshape(hidden_shape);
        if (r.d_weight.defined()) grads[1] = r.d_weight.to(dt_weight);
        if (r.d_bias.defined()) grads[2] = r.d_bias.to(dt_bias);
        return grads;
      });
  return out;
}

}  // namespace

Tensor linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& target,
                            const LinearCrossEntropyOptions& opts) {
  check_inputs(hidden, weight, bias, target, opts);
  if (opts.reduction == Reduction::none) return linear_cross_entropy_rows(hidden, weight, bias, target, opts);
  PassRequest rq;
  rq.reduction = opts.reduction;
  rq.ignore = opts.ignore_index;
  rq.chunk_rows = opts.chunk_rows;
  rq.grad_hidden = autograd::any_requires_grad({hidden});
  rq.grad_weight = autograd::any_requires_grad({weight});
  rq.grad_bias = bias.defined() && autograd::any_requires_grad({bias});
  PassResult res = run_chunks(prepare(hidden, weight, bias, target, opts.ignore_index), rq);
  Tensor out = res.loss;
  if (!rq.grad_hidden && !rq.grad_weight && !rq.grad_bias) return out;

  // Saved gradients, in the dtypes of the inputs as given.
  Tensor saved_hidden = rq.grad_hidden ? as_dtype_of(res.d_hidden, hidden).reshape(hidden.shape()) : Tensor();
  Tensor saved_weight = as_dtype_of(res.d_weight, weight);
  Tensor saved_bias = as_dtype_of(res.d_bias, bias);
  res = PassResult{};
  autograd::record("LinearCrossEntropyBackward", {hidden, weight, bias}, out, {saved_hidden, saved_weight, saved_bias},
                   [](const Tensor& g, const autograd::BackwardContext& ctx) {
                     std::vector<Tensor> grads(3);
                     for (size_t i = 0; i < 3; ++i) {
                       const Tensor& s = ctx.saved[i];
                       if (!ctx.needs(i) || !s.defined()) continue;
                       grads[i] = mul(s, g.dtype() == s.dtype() ? g : g.to(s.dtype()));
                     }
                     return grads;
                   });
  return out;
}

}  // namespace zae
