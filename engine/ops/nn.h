// Neural-network functional ops (autograd-aware): the stateless core of nn/ layers.
#pragma once

#include <optional>

#include "engine/generator.h"
#include "engine/tensor.h"

namespace zae {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
/// Normalises over the trailing dims given by normalized_shape; weight/bias optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

enum class Reduction { none, mean, sum };

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::mean;
  Tensor weight{};  // optional per-class weights (C)
};
/// logits (N, C) or (N, C, d1, ...) and class indices target (N) / (N, d1, ...), as
/// torch.nn.functional.cross_entropy. Mean is over non-ignored targets (weighted).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opts = {});

/// Rows of weight (V, D) picked by integer indices; the row padding_idx gets no gradient.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx = std::nullopt);

/// Zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

/// int64 (..., num_classes) one-hot encoding of integer indices; num_classes < 0 = max + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

}  // namespace zae
