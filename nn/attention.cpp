#include "nn/attention.h"

#include <cmath>
#include <limits>

#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/shape.h"

namespace zae::nn {

CausalSelfAttention::CausalSelfAttention(const Options& opts) : Layer("CausalSelfAttention"), opts_(opts) {
  ZAE_CHECK(opts.embed_dim > 0 && opts.num_heads > 0,
            "CausalSelfAttention: embed_dim and num_heads must be > 0, got embed_dim=", opts.embed_dim,
            ", num_heads=", opts.num_heads);
  ZAE_CHECK(opts.embed_dim % opts.num_heads == 0, "CausalSelfAttention: embed_dim=", opts.embed_dim,
            " is not divisible by num_heads=", opts.num_heads);
  ZAE_CHECK(opts.dropout >= 0.0 && opts.dropout <= 1.0, "CausalSelfAttention: dropout must be in [0, 1], got ",
            opts.dropout);
  const int64_t c = opts.embed_dim;
  c_attn_ = register_module("c_attn", std::make_shared<Linear>(c, 3 * c, opts.bias));
  c_proj_ = register_module("c_proj", std::make_shared<Linear>(c, c, opts.bias));
  attn_dropout_ = register_module("attn_dropout", std::make_shared<Dropout>(opts.dropout));
  resid_dropout_ = register_module("resid_dropout", std::make_shared<Dropout>(opts.dropout));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "CausalSelfAttention: undefined input");
  ZAE_CHECK(x.dim() == 3 && x.size(2) == opts_.embed_dim,
            "CausalSelfAttention: expected input (B, T, C) with C = embed_dim = ", opts_.embed_dim, ", got shape ",
            shape_str(x.shape()));
  const int64_t b = x.size(0), t = x.size(1), c = opts_.embed_dim, nh = opts_.num_heads, hd = c / nh;

  Tensor qkv = c_attn_->forward(x);  // (B, T, 3C)
  std::vector<Tensor> parts = split(qkv, c, 2);
  auto heads = [&](const Tensor& z) { return z.reshape({b, t, nh, hd}).transpose(1, 2); };  // (B, nh, T, hd)
  Tensor q = heads(parts[0]), k = heads(parts[1]), v = heads(parts[2]);

  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Tensor y;  // (B, nh, T, hd)
  // The CUDA kernels cover float32 / bfloat16 / float16 and head dims up to 128.
  const bool fused_kernel = x.device().is_cpu() || (hd <= 128 && x.dtype() != DType::float64);
  if (fused_kernel && (opts_.dropout == 0.0 || !is_training())) {
    // Fused flash attention: no (T, T) matrix is materialised.
    y = scaled_dot_product_attention(q, k, v, {.causal = true, .scale = scale});
  } else {
    // Dropout on the attention weights needs them explicitly: the composed path.
    Tensor att = mul(matmul(q, k.transpose(-2, -1)), scale);  // (B, nh, T, T)
    // Key position j is hidden from query position i when j > i.
    Tensor pos = arange(t, {.dtype = DType::int64, .device = x.device()});
    Tensor future = gt(pos.unsqueeze(0), pos.unsqueeze(1));  // (T, T) bool
    att = masked_fill(att, future, -std::numeric_limits<double>::infinity());
    att = softmax(att, -1);
    att = attn_dropout_->forward(att);
    y = matmul(att, v);
  }
  y = y.transpose(1, 2).reshape({b, t, c});  // (B, T, C)
  return resid_dropout_->forward(c_proj_->forward(y));
}

std::string CausalSelfAttention::extra_repr() const {
  return "embed_dim=" + std::to_string(opts_.embed_dim) + ", num_heads=" + std::to_string(opts_.num_heads);
}

}  // namespace zae::nn
