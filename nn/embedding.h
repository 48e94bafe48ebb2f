// Embedding: a lookup table of num_embeddings rows of width embedding_dim, as
// torch.nn.Embedding. Parameter "weight" (num_embeddings, embedding_dim) starts
// N(0, 1) from the default generator with the padding_idx row zeroed; that row
// gets no gradient. A negative padding_idx counts from the end and is stored
// wrapped (as PyTorch).
#pragma once

#include <cstdint>
#include <optional>

#include "nn/module.h"

namespace zae::nn {

class Embedding : public Layer {
 public:
  struct Options {
    int64_t num_embeddings = 0;
    int64_t embedding_dim = 0;
    std::optional<int64_t> padding_idx = std::nullopt;
  };
  explicit Embedding(const Options& opts);
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = std::nullopt)
      : Embedding(
            Options{.num_embeddings = num_embeddings, .embedding_dim = embedding_dim, .padding_idx = padding_idx}) {}

  /// Integer indices (int64 or int32) of any shape -> indices.shape + (embedding_dim).
  Tensor forward(const Tensor& indices) override;
  /// Redraws the weight as the constructor does.
  void reset_parameters();
  std::string extra_repr() const override;

  /// The options, with padding_idx wrapped into [0, num_embeddings).
  const Options& options() const { return opts_; }
  /// The registered handle (a copy of it shares the tensor: in-place ops and init apply).
  Tensor weight() const { return weight_; }

 private:
  Options opts_;
  Tensor weight_;  // (num_embeddings, embedding_dim)
};

}  // namespace zae::nn
