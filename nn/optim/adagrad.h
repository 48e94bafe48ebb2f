// Adagrad, as torch.optim.Adagrad (PyTorch 1.13 / 2.x semantics, dense gradients).
// With t the parameter's step and g = (maximize ? -grad : grad) + weight_decay * p:
//   sum += g^2;   p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)
// Option keys: lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize (0/1).
// State: "step", "sum" (created at a parameter's first step, filled with its group's
// initial_accumulator_value; PyTorch creates it in the constructor with the same value).
#pragma once

#include <vector>

#include "nn/optim/optimizer.h"

namespace zae::optim {

/// Adagrad's defaults, convertible to its option map: Adagrad(params, {.lr = 0.1}).
struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
  bool maximize = false;
  Options to_map() const;
};

class Adagrad : public Optimizer {
 public:
  explicit Adagrad(std::vector<Tensor> params, AdagradOptions options = {});
  /// Groups' options override `options` key by key.
  explicit Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});
  void step() override;

 protected:
  void validate(const Options& o) const override;
  std::vector<std::string> state_keys() const override { return {"step", "sum"}; }
};

}  // namespace zae::optim
