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

/// Options of linear_cross_entropy.
struct LinearCrossEntropyOptions {
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;  ///< none: per-row losses (backward recomputes the chunks)
  int64_t chunk_rows = 0;                 ///< rows per chunk; 0: automatic (max(32 MiB of float32 logits, 2 C rows))
};
/// cross_entropy(hidden @ weight^T + bias, target) without storing the (N, V) logits:
/// hidden (N, C) or (..., C), weight (V, C), bias (V) or undefined, target (N) / (...)
/// class indices. Computed in chunks of rows; gradients (when needed) are formed during
/// the forward and saved instead of the logits (engine/ops/linear_cross_entropy.cpp).
Tensor linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& target,
                            const LinearCrossEntropyOptions& opts = {});

/// Rows of weight (V, D) picked by integer indices; the row padding_idx gets no gradient.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx = std::nullopt);

/// Zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

/// int64 (..., num_classes) one-hot encoding of integer indices; num_classes < 0 = max + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

/// Options of scaled_dot_product_attention.
struct AttentionOptions {
  bool causal = false;            ///< query i sees keys j <= i only (requires Tq == Tk)
  std::optional<double> scale{};  ///< multiplies q k^T; default 1 / sqrt(D)
};
/// Fused (flash) attention softmax(scale q k^T [causal mask]) v for q (..., Tq, D) and
/// k, v (..., Tk, D) with equal leading dims (e.g. (B, H)); returns (..., Tq, D). Under
/// autocast it runs in the low dtype (float32 accumulation), like matmul.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& opts = {});

/// The two outputs of add_layer_norm.
struct AddLayerNormResult {
  Tensor sum;  ///< x + residual (the residual stream, used again downstream)
  Tensor out;  ///< layer_norm(sum)
};
/// Fused residual add + layer_norm: sum = x + residual (equal shapes, dtypes and devices),
/// out = layer_norm(sum, normalized_shape, weight, bias, eps), in one kernel; backward takes
/// the gradients of both outputs in one kernel (engine/ops/add_layer_norm.cpp).
AddLayerNormResult add_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                  const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);

}  // namespace zae
