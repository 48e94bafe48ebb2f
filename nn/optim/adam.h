// Adam (with AMSGrad) and AdamW, as torch.optim.Adam / torch.optim.AdamW (PyTorch
// 1.13 / 2.x semantics). With g = maximize ? -grad : grad and t the parameter's step:
//   Adam:  g += weight_decay * p                    (L2 penalty in the gradient)
//   AdamW: p *= 1 - lr * weight_decay               (decoupled weight decay)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   amsgrad: vmax = max(vmax, v), and vmax replaces v below
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Option keys: lr, beta1, beta2, eps, weight_decay, amsgrad (0/1), maximize (0/1), and
// for 16-bit parameters master_weights (0/1), stochastic_rounding (0/1), seed (-1 or an
// integer; see optimizer.h).
// State: "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq" when amsgrad, and "master"
// (float32) for 16-bit parameters with master_weights.
// Capturable (set_capturable): lr, beta1, beta2, eps and weight_decay are read from
// device memory at each replay; amsgrad, maximize and AdamW-ness are fixed at capture.
// AdamW is Adam with decoupled weight decay (and weight_decay defaulting to 1e-2).
#pragma once

#include <string>
#include <vector>

#include "nn/optim/optimizer.h"

namespace zae::optim {

/// Adam's defaults, convertible to its option map: Adam(params, {.lr = 3e-4}).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
  /// float32 master copies of float16 / bfloat16 parameters (llm.c's bf16 training).
  bool master_weights = false;
  /// Stochastic rounding when writing bfloat16 parameters.
  bool stochastic_rounding = false;
  /// The rounding stream's key; -1: the default generator's seed.
  double seed = -1;
  Options to_map() const;
};

/// AdamW's defaults: AdamW(params, {.lr = 3e-4, .weight_decay = 0.1}).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
  bool master_weights = false;       ///< see AdamOptions
  bool stochastic_rounding = false;  ///< see AdamOptions
  double seed = -1;                  ///< see AdamOptions
  Options to_map() const;
};

class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  /// Groups' options override `options` key by key.
  explicit Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  void step() override;

 protected:
  Adam(std::string name, std::vector<ParamGroup> groups, Options defaults, bool decoupled_weight_decay);
  void validate(const Options& o) const override;
  std::vector<std::string> state_keys() const override {
    return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master"};
  }
  std::vector<std::string> hyper_keys() const override { return {"lr", "beta1", "beta2", "eps", "weight_decay"}; }

 private:
  bool decoupled_weight_decay_ = false;
};

class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
};

}  // namespace zae::optim
