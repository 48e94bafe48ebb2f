// CausalSelfAttention: GPT-2's multi-head masked self-attention block. For x (B, T, C):
//   q, k, v = split(c_attn(x), C, dim=2)            each (B, T, C)
//   q, k, v -> (B, nh, T, hd)                        hd = C / nh
//   att = softmax(masked_fill(q k^T / sqrt(hd), j > i, -inf)) ; attn_dropout(att)
//   y = c_proj(merge_heads(att v)) ; resid_dropout(y)
// The attention itself is the fused scaled_dot_product_attention (engine/ops/nn.h)
// whenever attention dropout does not apply (dropout == 0 or eval mode); with dropout
// in training it is composed from matmul, masked_fill, softmax, dropout and matmul.
// Children, in order: c_attn = Linear(C, 3C), c_proj = Linear(C, C),
// attn_dropout and resid_dropout = Dropout(dropout); state-dict keys
// c_attn.weight, c_attn.bias, c_proj.weight, c_proj.bias (nanoGPT's names).
#pragma once

#include <cstdint>
#include <memory>

#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace zae::nn {

class CausalSelfAttention : public Layer {
 public:
  struct Options {
    int64_t embed_dim = 0;
    int64_t num_heads = 1;
    bool bias = true;      ///< bias in c_attn and c_proj
    double dropout = 0.0;  ///< on the attention weights and on the output
  };
  explicit CausalSelfAttention(const Options& opts);

  /// x (B, T, embed_dim) -> (B, T, embed_dim); position t attends to positions <= t.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  const Options& options() const { return opts_; }
  const std::shared_ptr<Linear>& c_attn() const { return c_attn_; }
  const std::shared_ptr<Linear>& c_proj() const { return c_proj_; }

 private:
  Options opts_;
  std::shared_ptr<Linear> c_attn_;
  std::shared_ptr<Linear> c_proj_;
  std::shared_ptr<Dropout> attn_dropout_;
  std::shared_ptr<Dropout> resid_dropout_;
};

}  // namespace zae::nn
