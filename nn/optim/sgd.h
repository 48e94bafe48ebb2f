// SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize,
// as torch.optim.SGD (PyTorch 1.13 / 2.x semantics):
//   d = (maximize ? -g : g) + weight_decay * p
//   momentum != 0: buf = d on a parameter's first step, else momentum * buf + (1 - dampening) * d;
//                  d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
// Option keys: lr, momentum, dampening, weight_decay, nesterov (0/1), maximize (0/1).
// State: "momentum_buffer" (only when momentum != 0).
// Invariant: nesterov requires momentum > 0 and dampening == 0 (checked per group).
#pragma once

#include <vector>

#include "nn/optim/optimizer.h"

namespace zae::optim {

/// SGD's defaults, convertible to its option map: SGD(params, {.lr = 0.1, .momentum = 0.9}).
struct SGDOptions {
  double lr = 1e-3;  // PyTorch >= 2.2's default (lr was required before)
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
  Options to_map() const;
};

class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  /// Groups' options override `options` key by key.
  explicit SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  void step() override;

 protected:
  void validate(const Options& o) const override;
  std::vector<std::string> state_keys() const override { return {"momentum_buffer"}; }
};

}  // namespace zae::optim
