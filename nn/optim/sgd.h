// SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize,
// as torch.optim.SGD (PyTorch 1.13 / 2.x semantics):
//   d = (maximize ? -g : g) + weight_decay * p
//   momentum != 0: buf = d on a parameter's first step, else momentum * buf + (1 - dampening) * d;
//                  d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
// Option keys: lr, momentum, dampening, weight_decay, nesterov (0/1), maximize (0/1), and
// for 16-bit parameters master_weights (0/1), stochastic_rounding (0/1), seed (see
// optimizer.h).
// State: "momentum_buffer" (only when momentum != 0), "master" (16-bit parameters with
// master_weights), "step" (only with stochastic_rounding: it picks the rounding stream).
// Capturable (set_capturable): lr, momentum, dampening and weight_decay are read from
// device memory at each replay; nesterov, maximize and whether momentum is zero are
// fixed at capture.
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
  bool master_weights = false;       ///< float32 master copies of 16-bit parameters
  bool stochastic_rounding = false;  ///< stochastic rounding when writing bfloat16
  double seed = -1;                  ///< the rounding stream's key; -1: the default generator's seed
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
  std::vector<std::string> state_keys() const override { return {"momentum_buffer", "master", "step"}; }
  std::vector<std::string> hyper_keys() const override { return {"lr", "momentum", "dampening", "weight_decay"}; }
};

}  // namespace zae::optim
