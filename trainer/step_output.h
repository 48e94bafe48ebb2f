// StepOutput: what train_step / test_step return — named tensors in insertion
// order. "loss" is required in train mode. One-element values are logged as
// numbers; "output" (and any other multi-element value) is kept as a tensor.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace zae {

class StepOutput {
 public:
  StepOutput() = default;
  StepOutput(std::initializer_list<std::pair<std::string, Tensor>> items);

  /// Sets `name` (replacing an existing value, keeping its position).
  void set(const std::string& name, const Tensor& value);
  /// Convenience for plain numbers (stored as a float64 0-dim tensor).
  void set(const std::string& name, double value);
  bool contains(const std::string& name) const;
  /// The value under `name`; a missing name is an error listing the names present.
  const Tensor& at(const std::string& name) const;
  const std::vector<std::pair<std::string, Tensor>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
};

/// Metrics computed at the end of an epoch (metric_on_epoch_end), by name.
using Metrics = std::map<std::string, double>;

}  // namespace zae
