// RMSprop (centered, momentum), as torch.optim.RMSprop (PyTorch 1.13 / 2.x semantics).
// With g = (maximize ? -grad : grad) + weight_decay * p:
//   sq = alpha sq + (1 - alpha) g^2
//   centered: ga = alpha ga + (1 - alpha) g,  avg = sqrt(sq - ga^2) + eps;  else avg = sqrt(sq) + eps
//   momentum > 0: buf = momentum buf + g / avg,  p -= lr buf;   else p -= lr g / avg
// Option keys: lr, alpha, eps, weight_decay, momentum, centered (0/1), maximize (0/1).
// State: "step", "square_avg", "grad_avg" (centered), "momentum_buffer" (momentum > 0).
#pragma once

#include <vector>

#include "nn/optim/optimizer.h"

namespace zae::optim {

/// RMSprop's defaults, convertible to its option map: RMSprop(params, {.lr = 1e-3, .centered = true}).
struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
  Options to_map() const;
};

class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
  /// Groups' options override `options` key by key.
  explicit RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  void step() override;

 protected:
  void validate(const Options& o) const override;
  std::vector<std::string> state_keys() const override {
    return {"step", "square_avg", "grad_avg", "momentum_buffer"};
  }
};

}  // namespace zae::optim
