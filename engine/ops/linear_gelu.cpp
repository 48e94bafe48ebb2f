// linear_gelu: y = gelu_tanh(x W^T + b) as one graph node (GPT-2's MLP c_fc + GELU), with
// the pre-activation h = x W^T + b either saved for backward or recomputed there.
//
// Invariants:
// - Forward values are those of gelu(linear(x, W, b), GeluApprox::tanh) on the CPU,
//   bitwise: h comes from linear itself (no graph) and the GELU pass is the same
//   unary_into kernel (kernels/cpu/unary.cpp, vectorised tanh). When h is not needed
//   afterwards the GELU is applied to h in place, so only one (..., out) buffer exists.
// - CUDA: when h is not saved (no grad needed, or recompute) the GEMM runs with
//   cuBLASLt's bias+GELU epilogue (kernels/cuda/gemm.h GemmEpilogue::bias_gelu, or gelu
//   without a bias) and h is never stored; when h must be saved the GEMM writes h with
//   the bias epilogue (through linear) and one elementwise GELU kernel writes y.
// - Saved for backward: without recompute x (when W needs a gradient), W (when x does)
//   and h; with recompute x, W and the bias (parameters, alive anyway) and not h, which
//   backward recomputes with one GEMM (+ bias) under no-grad. The (..., out) h is the
//   memory recompute trades for that GEMM.
// - Backward: g_h = g * gelu_tanh'(h) (the GELU backward kernel), then exactly linear's
//   backward GEMMs: dx = g_h W, dW = g_h^T x, db = 1^T g_h. On the CPU the gradients are
//   bitwise those of the composed ops, with or without recompute.
// - autocast: like linear, float32 inputs run in the low dtype (float32 accumulation).
#include <algorithm>
#include <optional>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/gemm_common.h"
#include "engine/ops/linalg.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "engine/cuda_matmul.h"
#include "kernels/cuda/gemm.h"
#endif

namespace zae {

namespace {

constexpr const char* kOp = "linear_gelu";

void check_same(const char* na, const Tensor& a, const char* nb, const Tensor& b) {
  ZAE_CHECK(a.dtype() == b.dtype(), kOp, ": dtype mismatch: ", na, " is ", a.dtype(), " but ", nb, " is ", b.dtype(),
            " (shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), ")");
  ZAE_CHECK(a.device() == b.device(), kOp, ": device mismatch: ", na, " is on ", a.device(), " but ", nb, " is on ",
            b.device(), " (shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), ")");
}

void validate(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ZAE_CHECK(x.defined() && weight.defined(), kOp, ": undefined ", x.defined() ? "weight" : "input", " tensor");
  check_same("input", x, "weight", weight);
  ZAE_CHECK(is_floating(x.dtype()), kOp, ": dtype ", x.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
  ZAE_CHECK(x.dim() >= 1, kOp, ": input must have at least 1 dimension, got shape ", shape_str(x.shape()));
  ZAE_CHECK(weight.dim() == 2, kOp, ": weight must be 2-D (out_features, in_features), got shape ",
            shape_str(weight.shape()));
  ZAE_CHECK(x.size(-1) == weight.size(1), kOp, ": input shape ", shape_str(x.shape()), " and weight shape ",
            shape_str(weight.shape()), " do not match (in_features ", x.size(-1), " != ", weight.size(1), ")");
  if (bias.defined()) {
    check_same("input", x, "bias", bias);
    ZAE_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), kOp, ": bias must have shape [", weight.size(0),
              "] (out_features of weight ", shape_str(weight.shape()), "), got ", shape_str(bias.shape()));
  }
}

// h = x W^T + b without a graph (linear's own GEMM: layouts, batching, bias).
Tensor pre_activation(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  NoGradGuard no_grad;
  return linear(x, weight, bias);
}

#ifdef ZAE_WITH_CUDA
// How GEMM reads a stored 2-D matrix (gemm_common.h), or nothing.
std::optional<MatLayout> layout_of(const Tensor& t) {
  return mat_layout(t.size(0), t.size(1), t.stride(0), t.stride(1));
}

// y (..., out) = gelu(x W^T + b) in one cuBLASLt call with the (bias+)GELU epilogue; h
// is never stored. x is read as a (rows, in) matrix (a copy only when its leading dims
// do not fold into one row stride), W as stored (trans flag, no copy when either of
// its dims is unit-stride).
Tensor fused_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  namespace kc = kernels::cuda;
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  Shape y_shape(x.shape().begin(), x.shape().end() - 1);
  y_shape.push_back(out_f);
  Tensor y = Tensor::empty(y_shape, {.dtype = x.dtype(), .device = x.device()});
  const int64_t rows = y.numel() / std::max<int64_t>(out_f, 1);
  if (y.numel() == 0) return y;
  Tensor x2 = x.reshape({rows, in_f});
  std::optional<MatLayout> la = layout_of(x2);
  if (!la) {
    x2 = x2.contiguous();
    la = layout_of(x2);
  }
  Tensor w = weight;
  std::optional<MatLayout> lw = layout_of(w);
  if (!lw) {
    w = w.contiguous();
    lw = layout_of(w);
  }
  // op(B) = W^T (in, out): W read as stored (out, in) is B transposed, and vice versa.
  const bool trans_b = !lw->trans;
  Tensor b = bias;
  if (b.defined() && b.numel() > 1 && b.stride(0) != 1) b = b.contiguous();
  const int dev = x.device().index;
  cuda::DeviceGuard guard(dev);
  kc::gemm(rows, out_f, in_f, la->trans, trans_b, x2.raw_data(), la->ld, w.raw_data(), lw->ld, y.raw_data(), out_f,
           kc::GemmBatch{}, 1.0f, 0.0f, cuda_gemm_type(x.dtype(), kOp), cuda::allow_tf32(),
           b.defined() ? kc::GemmEpilogue::bias_gelu : kc::GemmEpilogue::gelu, b.defined() ? b.raw_data() : nullptr,
           cuda::current_stream(dev));
  return y;
}
#endif

// g_h = g * gelu_tanh'(h): the GELU backward of gelu(h, tanh), unrecorded factor.
Tensor gelu_backward(const Tensor& g, const Tensor& h) {
  Tensor d = Tensor::empty(h.shape(), {.dtype = h.dtype(), .device = h.device()});
  unary_into(UnaryOp::gelu_tanh_grad, d, h, "linear_gelu_backward");
  return mul(g, d);
}

}  // namespace

Tensor linear_gelu(const Tensor& x_arg, const Tensor& weight_arg, const Tensor& bias_arg,
                   const LinearGeluOptions& opts) {
  const Tensor x = autocast::to_low(x_arg), weight = autocast::to_low(weight_arg), bias = autocast::to_low(bias_arg);
  validate(x, weight, bias);
#ifndef ZAE_WITH_CUDA
  ZAE_CHECK(x.device().is_cpu(), kOp, ": not implemented for device ", x.device(), " (dtype ", x.dtype(),
            ") in this build");
#endif
  const bool recording = autograd::any_requires_grad({x, weight, bias});
  const bool save_h = recording && !opts.recompute;

  Tensor h, y;
#ifdef ZAE_WITH_CUDA
  if (x.device().is_cuda() && !save_h) y = fused_cuda(x, weight, bias);
#endif
  if (!y.defined()) {
    h = pre_activation(x, weight, bias);
    if (save_h) {
      y = Tensor::empty(h.shape(), {.dtype = h.dtype(), .device = h.device()});
    } else {
      y = h;  // h is not needed afterwards: GELU in place
      h = Tensor();
    }
    unary_into(UnaryOp::gelu_tanh, y, save_h ? h : y, kOp);
  }
  if (!recording) return y;

  const Shape x_shape = x.shape();
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  const bool recompute = opts.recompute;
  std::vector<Tensor> saved;
  if (recompute) {
    saved = {x, weight, bias};
  } else {
    saved = {weight.requires_grad() ? x : Tensor(), x.requires_grad() ? weight : Tensor(), h};
  }
  autograd::record(
      recompute ? "LinearGeluRecomputeBackward" : "LinearGeluBackward", {x, weight, bias}, y, std::move(saved),
      [x_shape, out_f, in_f, recompute](const Tensor& g, const autograd::BackwardContext& ctx) {
        const Tensor& xs = ctx.saved[0];
        const Tensor& ws = ctx.saved[1];
        const Tensor h = recompute ? pre_activation(xs, ws, ctx.saved[2]) : ctx.saved[2];
        const int64_t rows = shape_numel(Shape(x_shape.begin(), x_shape.end() - 1));
        return linear_grads(gelu_backward(g, h).reshape({rows, out_f}), xs, ws, x_shape, in_f, ctx);
      });
  return y;
}

}  // namespace zae
