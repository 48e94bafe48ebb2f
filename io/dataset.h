// Dataset: a random-access collection of samples; TensorDataset: the samples are
// the rows of a few tensors that share their first dimension.
// Invariants: get(i) is defined for 0 <= i < size() and returns one sample without
// a batch dimension; get is const and must be safe to call from several threads at
// once (DataLoader workers do), which holds for every dataset in io/.
#pragma once

#include <cstdint>

#include "io/batch.h"

namespace zae {

/// A map-style dataset (PyTorch's torch.utils.data.Dataset).
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// Sample `index` (0 <= index < size()), as named or positional tensors without a
  /// batch dimension. Called concurrently by DataLoader workers: must be thread-safe.
  virtual Batch get(int64_t index) const = 0;
};

/// Samples are rows: get(i) = {name_k: tensor_k[i]} for every given tensor, in order
/// (views into the given tensors, not copies).
class TensorDataset : public Dataset {
 public:
  /// TensorDataset({{"x", X}, {"y", Y}}) or TensorDataset({X, Y}). All tensors must be
  /// defined, have at least one dimension and the same size in dim 0.
  explicit TensorDataset(Batch tensors);

  int64_t size() const override { return size_; }
  Batch get(int64_t index) const override;
  /// The whole tensors, as given.
  const Batch& tensors() const { return tensors_; }

 private:
  Batch tensors_;
  int64_t size_ = 0;
};

}  // namespace zae
