// scaled_dot_product_attention: one fused (flash) forward kernel and one graph node
// (inputs q, k, v) whose backward is one fused kernel.
// Invariants: q is (..., Tq, D), k and v are (..., Tk, D) with the same leading dims as q
// (rank >= 3), one floating dtype and one device; Tk >= 1; causal needs Tq == Tk. Inputs
// may be any strided views: they are made dense first. The node saves the dense q, k, v,
// the output O and the per-row logsumexp L (..., Tq) in acc_t (float32 for 16-bit and
// float32 inputs, float64 for float64). No (Tq, Tk) matrix is ever materialised.
// Autocast: a low-precision op like matmul (float32 inputs run in the low dtype, the
// kernels accumulate in float32, the output is the low dtype).
// Devices: CPU kernels (kernels/cpu/attention.h), and in a CUDA build their CUDA twins
// (kernels/cuda/attention.h; float32 / bfloat16 / float16, head dims up to 128) on
// the thread's current stream of q's device. On CUDA, bfloat16 / float16 with a head dim
// that is a multiple of 8 (<= 128) first try cuDNN's fused attention
// (engine/cuda/cudnn_sdpa.h; off with ZAE_CUDNN_ATTENTION=0), forward and backward each on
// its own; whenever cuDNN has no plan our kernels run. Both write the same lse
// (natural-log logsumexp of the scaled scores), so either backward follows either forward.
#include <cmath>
#include <type_traits>

#include "engine/autocast.h"
#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/copy.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/attention.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/cudnn_sdpa.h"
#include "engine/cuda/stream.h"
#include "kernels/cuda/attention.h"
#endif

namespace zae {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

kernels::cpu::AttentionDims dims_of(const Tensor& q, const Tensor& k, bool causal, double scale) {
  kernels::cpu::AttentionDims dims;
  dims.tq = q.size(-2);
  dims.tk = k.size(-2);
  dims.d = q.size(-1);
  dims.batch_heads = 1;
  for (int64_t i = 0; i + 2 < q.dim(); ++i) dims.batch_heads *= q.size(i);
  dims.causal = causal;
  dims.scale = scale;
  return dims;
}

void check_cuda_support(const Tensor& q, int64_t d) {
#ifdef ZAE_WITH_CUDA
  if (!q.device().is_cuda()) return;
  ZAE_CHECK(q.dtype() != DType::float64, kOp, ": float64 is not implemented on ", q.device(),
            " (supported there: float32, bfloat16, float16)");
  ZAE_CHECK(kernels::cuda::attention_head_dim_supported(d), kOp, ": head dim D = ", d, " is not supported on ",
            q.device(), " (the CUDA kernels handle 1 <= D <= 128); shape ", shape_str(q.shape()));
#else
  (void)q;
  (void)d;
#endif
}

#ifdef ZAE_WITH_CUDA
// The cuDNN view of a dense (..., H, T, D) problem: B = the product of the leading dims.
cuda::SdpaProblem sdpa_problem(const Tensor& q, const kernels::cpu::AttentionDims& dims) {
  cuda::SdpaProblem p;
  p.device = q.device().index;
  p.heads = q.size(-3);
  p.batch = p.heads > 0 ? dims.batch_heads / p.heads : 0;
  p.tq = dims.tq;
  p.tk = dims.tk;
  p.d = dims.d;
  p.dtype = q.dtype();
  p.causal = dims.causal;
  p.scale = dims.scale;
  return p;
}

// cuDNN's fused forward when eligible and planned; false: run our kernel.
bool try_cudnn_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                       const kernels::cpu::AttentionDims& dims, cudaStream_t stream) {
  const cuda::SdpaProblem p = sdpa_problem(q, dims);
  if (!cuda::cudnn_sdpa_ineligible_reason(p).empty()) return false;
  return cuda::cudnn_sdpa_forward(p, q.raw_data(), k.raw_data(), v.raw_data(), o.raw_data(), lse.data<float>(),
                                  stream);
}

// cuDNN's fused backward when eligible and planned; false: run our kernel.
bool try_cudnn_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& g,
                        const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                        const kernels::cpu::AttentionDims& dims, cudaStream_t stream) {
  const cuda::SdpaProblem p = sdpa_problem(q, dims);
  if (!cuda::cudnn_sdpa_ineligible_reason(p).empty()) return false;
  return cuda::cudnn_sdpa_backward(p, q.raw_data(), k.raw_data(), v.raw_data(), o.raw_data(), g.raw_data(),
                                   lse.data<float>(), dq.raw_data(), dk.raw_data(), dv.raw_data(), stream);
}
#endif

// Gradients (dq, dk, dv); entries not requested stay undefined.
std::vector<Tensor> attention_backward_impl(const Tensor& g_in, const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& o, const Tensor& lse,
                                            const kernels::cpu::AttentionDims& dims,
                                            const autograd::BackwardContext& ctx) {
  ZAE_CHECK(g_in.shape() == o.shape(), kOp, " backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the output shape ", shape_str(o.shape()));
  Tensor g = dense_data(g_in.dtype() == o.dtype() ? g_in : g_in.to(o.dtype()));
  TensorOptions opts{.dtype = q.dtype(), .device = q.device()};
  Tensor dq = Tensor::empty(q.shape(), opts), dk = Tensor::empty(k.shape(), opts),
         dv = Tensor::empty(v.shape(), opts);
  dispatch_floating(q.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    if (q.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      if constexpr (!std::is_same_v<T, double>) {
        cuda::DeviceGuard guard(q.device().index);
        const cudaStream_t stream = cuda::current_stream(q.device().index);
        if (!try_cudnn_backward(q, k, v, o, g, lse, dq, dk, dv, dims, stream)) {
          const size_t bytes = kernels::cuda::attention_backward_workspace_bytes(dims.batch_heads, dims.tq, dims.d);
          Tensor workspace =
              Tensor::empty({static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = q.device()});
          kernels::cuda::attention_backward<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                               lse.data<float>(), dq.data<T>(), dk.data<T>(), dv.data<T>(),
                                               dims.batch_heads, dims.tq, dims.tk, dims.d, dims.causal, dims.scale,
                                               workspace.raw_data(), stream);
        }
      }
#endif
    } else {
      kernels::cpu::attention_backward<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                          lse.data<Acc>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), dims);
    }
  });
  std::vector<Tensor> grads{dq, dk, dv};
  for (size_t i = 0; i < grads.size(); ++i)
    if (!ctx.needs(i)) grads[i] = Tensor();
  return grads;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_arg, const Tensor& k_arg, const Tensor& v_arg,
                                    const AttentionOptions& opts) {
  const Tensor q_in = autocast::to_low(q_arg), k_in = autocast::to_low(k_arg), v_in = autocast::to_low(v_arg);
  ZAE_CHECK(q_in.defined() && k_in.defined() && v_in.defined(), kOp, ": undefined ",
            !q_in.defined() ? "q" : (!k_in.defined() ? "k" : "v"), " tensor");
  ZAE_CHECK(q_in.dim() >= 3 && k_in.dim() == q_in.dim() && v_in.dim() == q_in.dim(), kOp,
            ": expected q (..., Tq, D), k and v (..., Tk, D) of one rank >= 3 (e.g. (B, H, T, D)), got q ",
            shape_str(q_in.shape()), ", k ", shape_str(k_in.shape()), ", v ", shape_str(v_in.shape()));
  ZAE_CHECK(q_in.dtype() == k_in.dtype() && q_in.dtype() == v_in.dtype(), kOp, ": dtype mismatch: q is ",
            q_in.dtype(), ", k is ", k_in.dtype(), ", v is ", v_in.dtype());
  ZAE_CHECK(q_in.device() == k_in.device() && q_in.device() == v_in.device(), kOp, ": device mismatch: q is on ",
            q_in.device(), ", k on ", k_in.device(), ", v on ", v_in.device());
  ZAE_CHECK(is_floating(q_in.dtype()), kOp, ": dtype ", q_in.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
  ZAE_CHECK(k_in.shape() == v_in.shape(), kOp, ": k and v must have the same shape, got k ",
            shape_str(k_in.shape()), " and v ", shape_str(v_in.shape()));
  bool same_lead = q_in.size(-1) == k_in.size(-1);
  for (int64_t i = 0; same_lead && i + 2 < q_in.dim(); ++i) same_lead = q_in.size(i) == k_in.size(i);
  ZAE_CHECK(same_lead, kOp, ": q ", shape_str(q_in.shape()), " and k ", shape_str(k_in.shape()),
            " must agree in every dim but the sequence dim (-2)");
  const int64_t tq = q_in.size(-2), tk = k_in.size(-2), d = q_in.size(-1);
  ZAE_CHECK(tk >= 1, kOp, ": k and v need at least one position, got k ", shape_str(k_in.shape()));
  ZAE_CHECK(!opts.causal || tq == tk, kOp, ": causal attention needs as many queries as keys, got q ",
            shape_str(q_in.shape()), " and k ", shape_str(k_in.shape()));
  const double scale = opts.scale.value_or(d > 0 ? 1.0 / std::sqrt(static_cast<double>(d)) : 1.0);
  ZAE_CHECK(std::isfinite(scale), kOp, ": scale must be finite, got ", scale);
  ZAE_CHECK(has_kernels_for(q_in.device()), kOp, ": not implemented for device ", q_in.device(), " (dtype ",
            q_in.dtype(), ") in this build");
  check_cuda_support(q_in, d);

  const kernels::cpu::AttentionDims dims = dims_of(q_in, k_in, opts.causal, scale);
  Tensor q = dense_data(q_in), k = dense_data(k_in), v = dense_data(v_in);
  Tensor o = Tensor::empty(q.shape(), {.dtype = q.dtype(), .device = q.device()});
  const Shape lse_shape(q.shape().begin(), q.shape().end() - 1);  // (..., Tq)
  Tensor lse = Tensor::empty(lse_shape, {.dtype = accumulate_dtype(q.dtype()), .device = q.device()});
  dispatch_floating(q.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = acc_t<T>;
    if (q.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      if constexpr (!std::is_same_v<T, double>) {
        cuda::DeviceGuard guard(q.device().index);
        const cudaStream_t stream = cuda::current_stream(q.device().index);
        if (!try_cudnn_forward(q, k, v, o, lse, dims, stream))
          kernels::cuda::attention_forward<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<float>(),
                                              dims.batch_heads, dims.tq, dims.tk, dims.d, dims.causal, dims.scale,
                                              stream);
      }
#endif
    } else {
      kernels::cpu::attention_forward<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<Acc>(), dims);
    }
  });

  autograd::record("ScaledDotProductAttentionBackward", {q_in, k_in, v_in}, o, {q, k, v, o, lse},
                   [dims](const Tensor& g, const autograd::BackwardContext& ctx) {
                     return attention_backward_impl(g, ctx.saved[0], ctx.saved[1], ctx.saved[2], ctx.saved[3],
                                                    ctx.saved[4], dims, ctx);
                   });
  return o;
}

}  // namespace zae
