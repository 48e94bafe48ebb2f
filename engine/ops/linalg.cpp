// matmul and linear: validate, lay the operands out for a strided-batched GEMM
// (kernels/cpu/gemm.h on the CPU, kernels/cuda/gemm.h through cuBLASLt on CUDA) and
// record one graph node per op.
//
// Invariants:
// - A matrix operand goes to GEMM as stored when its columns are unit-stride, with the
//   trans flag when its rows are unit-stride (W^T, x.t(): no copy), and is copied to a
//   dense buffer only when neither holds. Broadcast batch dims keep stride 0; batch
//   dims that do not merge into one GEMM batch stride are looped over, never copied.
//   Both devices run the same plan (plan_gemm).
// - A batch of row-contiguous A against one shared B folds into one GEMM with
//   m = batch * m, so linear on a dense (B, T, C) input is a single GEMM.
// - The output is dense. On the CPU, linear with a bias writes the broadcast bias first
//   and runs the GEMM with beta = 1 (one pass over the output); on CUDA the bias is
//   fused through cuBLASLt's bias epilogue (beta = 0), for every layout.
// - CUDA: float32 computes in float32 unless zae::cuda::set_allow_tf32(true)
//   (engine/cuda_matmul.h); bfloat16/float16 accumulate in float32; work goes to the
//   device's current stream and is never synchronized.
// - Backward formulas are matmuls themselves (and sum_to over broadcast batch dims).
#include <algorithm>
#include <optional>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"
#include "engine/ops/gemm_common.h"
#include "engine/ops/linalg.h"
#include "kernels/cpu/gemm.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "engine/cuda_matmul.h"
#include "kernels/cuda/gemm.h"
#endif

namespace zae {

namespace {

Tensor raw_view(const Tensor& t, Shape shape, Shape strides) {
  return Tensor::make_view(t.storage(), std::move(shape), std::move(strides), t.storage_offset(), t.dtype());
}

Tensor dense_copy(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

// One GEMM operand: a view (batch..., rows, cols) and how GEMM reads its matrices.
struct Operand {
  Tensor t;
  MatLayout layout;
};

Operand prepare(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  if (auto lay = mat_layout(r, c, t.stride(-2), t.stride(-1))) return {t, *lay};
  Tensor d = dense_copy(t);
  return {d, *mat_layout(r, c, d.stride(-2), d.stride(-1))};
}

// How run_gemm walks one product: `gemm` is one strided-batched GEMM (m may be a folded
// batch * m), repeated over the `outer` batch dims, which do not merge into one stride.
struct BatchDim {
  int64_t size, sa, sb, sc;
};
struct GemmPlan {
  int64_t m = 0, n = 0, k = 0;
  BatchDim gemm{1, 0, 0, 0};
  std::vector<BatchDim> outer;
  int64_t outer_count = 1;
  // Element offsets of A, B and C for outer index o.
  void offsets(int64_t o, int64_t& oa, int64_t& ob, int64_t& oc) const {
    int64_t rem = o;
    oa = ob = oc = 0;
    for (size_t d = outer.size(); d-- > 0;) {
      const int64_t i = rem % outer[d].size;
      rem /= outer[d].size;
      oa += i * outer[d].sa;
      ob += i * outer[d].sb;
      oc += i * outer[d].sc;
    }
  }
};

// Plans c (batch..., m, n) = a (batch_a..., m, k) @ b (batch_b..., k, n), where c is dense
// and its batch dims are the (right-aligned) broadcast of a's and b's.
GemmPlan plan_gemm(const Tensor& c, const Operand& a, const Operand& b) {
  GemmPlan p;
  const int64_t nb = c.dim() - 2;
  p.n = c.size(-1);
  p.k = a.t.size(-1);
  p.m = c.size(-2);
  auto batch_stride = [nb](const Tensor& t, int64_t d) -> int64_t {
    const int64_t td = d - (nb - (t.dim() - 2));
    return (td < 0 || t.size(td) == 1) ? 0 : t.stride(td);
  };
  // Batch dims without the size-1 ones, merged where all three operands step evenly.
  std::vector<BatchDim>& dims = p.outer;
  for (int64_t d = 0; d < nb; ++d) {
    const int64_t size = c.size(d);
    if (size == 1) continue;
    BatchDim bd{size, batch_stride(a.t, d), batch_stride(b.t, d), c.stride(d)};
    if (!dims.empty()) {
      BatchDim& prev = dims.back();
      if (prev.sa == bd.sa * size && prev.sb == bd.sb * size && prev.sc == bd.sc * size) {
        prev = BatchDim{prev.size * size, bd.sa, bd.sb, bd.sc};
        continue;
      }
    }
    dims.push_back(bd);
  }
  // Shared B and A rows evenly spaced across the innermost batch: one taller GEMM.
  if (!dims.empty()) {
    const BatchDim& in = dims.back();
    if (in.sb == 0 && !a.layout.trans && in.sa == p.m * a.layout.ld && in.sc == p.m * p.n) {
      p.m *= in.size;
      dims.pop_back();
    }
  }
  if (!dims.empty()) {
    p.gemm = dims.back();
    dims.pop_back();
  }
  for (const BatchDim& bd : dims) p.outer_count *= bd.size;
  return p;
}

void run_gemm_cpu(const char* op, const Tensor& c, const Operand& a, const Operand& b, const Tensor& bias,
                  const GemmPlan& p) {
  // The broadcast bias is written first; the GEMM adds onto it (beta = 1).
  if (bias.defined()) copy_into(c, bias);
  const float beta = bias.defined() ? 1.0f : 0.0f;
  dispatch_floating(c.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(a.t.raw_data());
    const T* pb = static_cast<const T*>(b.t.raw_data());
    T* pc = static_cast<T*>(c.raw_data());
    for (int64_t o = 0; o < p.outer_count; ++o) {
      int64_t oa, ob, oc;
      p.offsets(o, oa, ob, oc);
      kernels::cpu::gemm<T>(a.layout.trans, b.layout.trans, p.m, p.n, p.k, 1.0f, pa + oa, a.layout.ld, p.gemm.sa,
                            pb + ob, b.layout.ld, p.gemm.sb, beta, pc + oc, p.n, p.gemm.sc, p.gemm.size);
    }
  });
}

#ifdef ZAE_WITH_CUDA
// cuBLASLt on the tensors' device and its current stream. A bias (made contiguous if it
// is not) is fused through the bias epilogue, broadcast over every row and batch entry.
void run_gemm_cuda(const char* op, const Tensor& c, const Operand& a, const Operand& b, const Tensor& bias,
                   const GemmPlan& p) {
  namespace kc = kernels::cuda;
  const int dev = c.device().index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  const kc::GemmType type = cuda_gemm_type(c.dtype(), op);
  Tensor bias_dense;
  if (bias.defined()) bias_dense = (bias.numel() <= 1 || bias.stride(0) == 1) ? bias : dense_copy(bias);
  const kc::GemmEpilogue epi = bias.defined() ? kc::GemmEpilogue::bias : kc::GemmEpilogue::none;
  const void* bias_ptr = bias.defined() ? bias_dense.raw_data() : nullptr;
  const int64_t es = static_cast<int64_t>(c.element_size());
  const char* pa = static_cast<const char*>(a.t.raw_data());
  const char* pb = static_cast<const char*>(b.t.raw_data());
  char* pc = static_cast<char*>(c.raw_data());
  const kc::GemmBatch batch{p.gemm.size, p.gemm.sa, p.gemm.sb, p.gemm.sc};
  const bool tf32 = cuda::allow_tf32();
  for (int64_t o = 0; o < p.outer_count; ++o) {
    int64_t oa, ob, oc;
    p.offsets(o, oa, ob, oc);
    kc::gemm(p.m, p.n, p.k, a.layout.trans, b.layout.trans, pa + oa * es, a.layout.ld, pb + ob * es, b.layout.ld,
             pc + oc * es, p.n, batch, 1.0f, 0.0f, type, tf32, epi, bias_ptr, stream);
  }
}
#endif

// c (batch..., m, n) = a @ b (+ bias broadcast over the last dim), c dense (see plan_gemm).
void run_gemm(const char* op, const Tensor& c, const Operand& a, const Operand& b, const Tensor& bias) {
  if (c.numel() == 0) return;
  const GemmPlan p = plan_gemm(c, a, b);
  if (c.device().is_cpu()) return run_gemm_cpu(op, c, a, b, bias, p);
#ifdef ZAE_WITH_CUDA
  if (c.device().is_cuda()) return run_gemm_cuda(op, c, a, b, bias, p);
#endif
  ZAE_FAIL(op, ": not implemented for device ", c.device(), " (dtype ", c.dtype(), ") in this build");
}

void check_pair(const char* op, const char* na, const Tensor& a, const char* nb, const Tensor& b) {
  ZAE_CHECK(a.defined() && b.defined(), op, ": undefined ", a.defined() ? nb : na, " tensor");
  ZAE_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", na, " is ", a.dtype(), " but ", nb, " is ", b.dtype(),
            " (shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), ")");
  ZAE_CHECK(a.device() == b.device(), op, ": device mismatch: ", na, " is on ", a.device(), " but ", nb, " is on ",
            b.device(), " (shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), ")");
}

// torch.matmul's product (1-D operands promoted, batch dims broadcast) plus an optional
// bias broadcast over the last dim. No autograd. Shapes are validated by the callers.
Tensor matmul_forward(const char* op, const Tensor& a, const Tensor& b, const Tensor& bias) {
  ZAE_CHECK(is_floating(a.dtype()), op, ": dtype ", a.dtype(),
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
#ifndef ZAE_WITH_CUDA
  ZAE_CHECK(a.device().is_cpu(), op, ": not implemented for device ", a.device(), " (dtype ", a.dtype(),
            ") in this build");
#endif
  // Promote 1-D operands: (k) -> (1, k) for a, (k) -> (k, 1) for b.
  Tensor a2 = a.dim() == 1 ? raw_view(a, {1, a.size(0)}, {1, a.stride(0)}) : a;
  Tensor b2 = b.dim() == 1 ? raw_view(b, {b.size(0), 1}, {b.stride(0), 1}) : b;
  const Shape batch_a(a2.shape().begin(), a2.shape().end() - 2), batch_b(b2.shape().begin(), b2.shape().end() - 2);
  Shape batch(std::max(batch_a.size(), batch_b.size()));
  for (size_t i = 0; i < batch.size(); ++i) {
    const size_t r = batch.size() - i;  // position counted from the right, 1-based
    const int64_t sa = r <= batch_a.size() ? batch_a[batch_a.size() - r] : 1;
    const int64_t sb = r <= batch_b.size() ? batch_b[batch_b.size() - r] : 1;
    ZAE_CHECK(sa == sb || sa == 1 || sb == 1, op, ": batch dims ", shape_str(batch_a), " and ", shape_str(batch_b),
              " of shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be broadcast");
    batch[i] = sa == 1 ? sb : sa;
  }
  const int64_t m = a2.size(-2), n = b2.size(-1);
  Shape full = batch, shape = batch;  // full: (batch..., m, n); shape: with promoted dims dropped
  full.insert(full.end(), {m, n});
  if (a.dim() > 1) shape.push_back(m);
  if (b.dim() > 1) shape.push_back(n);

  Tensor out = Tensor::empty(shape, {.dtype = a.dtype(), .device = a.device()});
  Tensor c = raw_view(out, full, contiguous_strides(full));
  run_gemm(op, c, prepare(a2), prepare(b2), bias);
  return out;
}

// Gradient of one matmul operand computed at its broadcast batch shape, summed back
// over broadcast batch dims and reshaped to the operand's own shape.
Tensor reduce_to(const Tensor& grad, const Shape& promoted, const Shape& original) {
  Tensor g = grad.shape() == promoted ? grad : sum_to(grad, promoted);
  return g.reshape(original);
}

}  // namespace

Tensor matmul(const Tensor& a_arg, const Tensor& b_arg) {
  const Tensor a = autocast::to_low(a_arg), b = autocast::to_low(b_arg);
  check_pair("matmul", "first operand", a, "second operand", b);
  ZAE_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dimension, got shapes ",
            shape_str(a.shape()), " and ", shape_str(b.shape()));
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  ZAE_CHECK(ka == kb, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
            " cannot be multiplied (", ka, " != ", kb, ")");
  Tensor out = matmul_forward("matmul", a, b, Tensor());

  // Each operand is saved only when the other one needs a gradient.
  const Shape a_shape = a.shape(), b_shape = b.shape();
  const bool a_grad = a.requires_grad(), b_grad = b.requires_grad();
  autograd::record(
      "MatmulBackward", {a, b}, out, {b_grad ? a : Tensor(), a_grad ? b : Tensor()},
      [a_shape, b_shape](const Tensor& g, const autograd::BackwardContext& ctx) {
        // Promoted shapes (batch_a..., m, k) and (batch_b..., k, n); g as (batch..., m, n).
        const bool a_vec = a_shape.size() == 1, b_vec = b_shape.size() == 1;
        const Shape a2_shape = a_vec ? Shape{1, a_shape[0]} : a_shape;
        const Shape b2_shape = b_vec ? Shape{b_shape[0], 1} : b_shape;
        const int64_t m = a2_shape[a2_shape.size() - 2], k = a2_shape.back(), n = b2_shape.back();
        Shape full(g.shape().begin(), g.shape().end() - (a_vec ? 0 : 1) - (b_vec ? 0 : 1));
        full.insert(full.end(), {m, n});
        Tensor g2 = g.reshape(full);
        std::vector<Tensor> grads(2);
        if (ctx.needs(0)) {
          Tensor b2 = ctx.saved[1].reshape(b2_shape);
          grads[0] = reduce_to(matmul(g2, b2.transpose(-1, -2)), a2_shape, a_shape);
        }
        if (ctx.needs(1)) {
          Tensor a2 = ctx.saved[0].reshape(a2_shape);
          if (b2_shape.size() == 2 && a2_shape.size() > 2) {
            // One B shared by every batch: fold the batch into the GEMM's k.
            const int64_t rows = shape_numel(Shape(a2_shape.begin(), a2_shape.end() - 1));
            grads[1] = matmul(a2.reshape({rows, k}).t(), g2.reshape({rows, n})).reshape(b_shape);
          } else {
            grads[1] = reduce_to(matmul(a2.transpose(-1, -2), g2), b2_shape, b_shape);
          }
        }
        return grads;
      });
  return out;
}

Tensor linear(const Tensor& x_arg, const Tensor& weight_arg, const Tensor& bias_arg) {
  const Tensor x = autocast::to_low(x_arg), weight = autocast::to_low(weight_arg), bias = autocast::to_low(bias_arg);
  check_pair("linear", "input", x, "weight", weight);
  ZAE_CHECK(x.dim() >= 1, "linear: input must have at least 1 dimension, got shape ", shape_str(x.shape()));
  ZAE_CHECK(weight.dim() == 2, "linear: weight must be 2-D (out_features, in_features), got shape ",
            shape_str(weight.shape()));
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  ZAE_CHECK(x.size(-1) == in_f, "linear: input shape ", shape_str(x.shape()), " and weight shape ",
            shape_str(weight.shape()), " do not match (in_features ", x.size(-1), " != ", in_f, ")");
  if (bias.defined()) {
    check_pair("linear", "input", x, "bias", bias);
    ZAE_CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias must have shape [", out_f,
              "] (out_features of weight ", shape_str(weight.shape()), "), got ", shape_str(bias.shape()));
  }
  // W^T as a transposed view: GEMM reads it with the trans flag, no copy.
  Tensor wt = raw_view(weight, {in_f, out_f}, {weight.stride(1), weight.stride(0)});
  Tensor y = matmul_forward("linear", x, wt, bias);

  // x is saved only when weight needs a gradient, weight only when x does.
  const Shape x_shape = x.shape();
  const bool x_grad = x.requires_grad(), w_grad = weight.requires_grad();
  autograd::record(
      "LinearBackward", {x, weight, bias}, y, {w_grad ? x : Tensor(), x_grad ? weight : Tensor()},
      [x_shape, out_f, in_f](const Tensor& g, const autograd::BackwardContext& ctx) {
        const int64_t rows = shape_numel(Shape(x_shape.begin(), x_shape.end() - 1));
        return linear_grads(g.reshape({rows, out_f}), ctx.saved[0], ctx.saved[1], x_shape, in_f, ctx);
      });
  return y;
}

std::vector<Tensor> linear_grads(const Tensor& g2, const Tensor& x, const Tensor& weight, const Shape& x_shape,
                                 int64_t in_f, const autograd::BackwardContext& ctx) {
  const int64_t rows = g2.size(0);
  std::vector<Tensor> grads(3);
  if (ctx.needs(0)) grads[0] = matmul(g2, weight).reshape(x_shape);      // (M, in)
  if (ctx.needs(1)) grads[1] = matmul(g2.t(), x.reshape({rows, in_f}));  // (out, in)
  if (ctx.needs(2)) {
    // Column sums of g as a GEMV: ones (M) @ g (M, out).
    Tensor ones_m = ones({rows}, {.dtype = g2.dtype(), .device = g2.device()});
    grads[2] = matmul(ones_m, g2);  // (out)
  }
  return grads;
}

}  // namespace zae
