#include "nn/embedding.h"

#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "nn/init.h"

namespace zae::nn {

Embedding::Embedding(const Options& opts) : Layer("Embedding"), opts_(opts) {
  ZAE_CHECK(opts.num_embeddings >= 0 && opts.embedding_dim >= 0,
            "Embedding: num_embeddings and embedding_dim must be >= 0, got ", opts.num_embeddings, " and ",
            opts.embedding_dim);
  if (opts.padding_idx) {
    const int64_t p = *opts.padding_idx, n = opts.num_embeddings;
    ZAE_CHECK(p >= -n && p < n, "Embedding: padding_idx ", p, " must be within num_embeddings=", n, " (in [", -n, ", ",
              n - 1, "])");
    opts_.padding_idx = p < 0 ? p + n : p;
  }
  weight_ = register_parameter("weight", empty({opts.num_embeddings, opts.embedding_dim}));
  reset_parameters();
}

void Embedding::reset_parameters() {
  init::normal_(weight_);
  if (opts_.padding_idx) {
    NoGradGuard no_grad;
    weight_.select(0, *opts_.padding_idx).zero_();
  }
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(indices, weight_, opts_.padding_idx); }

std::string Embedding::extra_repr() const {
  std::string s = std::to_string(opts_.num_embeddings) + ", " + std::to_string(opts_.embedding_dim);
  if (opts_.padding_idx) s += ", padding_idx=" + std::to_string(*opts_.padding_idx);
  return s;
}

}  // namespace zae::nn
