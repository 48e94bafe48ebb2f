// Loss modules, as torch.nn: CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, SmoothL1Loss,
// BCEWithLogitsLoss. Each is a Module whose forward(input, target) delegates to the
// functional loss (engine/ops/nn.h cross_entropy, engine/ops/loss.h).
// Invariants: class / element weights are buffers named like PyTorch's ("weight",
// "pos_weight"; absent from the state dict when not given) so that to() moves and
// converts them with the module; loss modules have no parameters.
#pragma once

#include <cstdint>
#include <string>

#include "engine/ops/nn.h"
#include "nn/module.h"

namespace zae::nn {

/// A module taking (input, target) and returning a loss.
class Loss : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& input, const Tensor& target) = 0;
  Tensor operator()(const Tensor& input, const Tensor& target) { return forward(input, target); }
};

/// log_softmax + nll_loss over class-index targets: logits (N, C) / (N, C, d1, ...) / (C).
class CrossEntropyLoss : public Loss {
 public:
  struct Options {
    Tensor weight{};  ///< optional per-class weights (C)
    int64_t ignore_index = -100;
    Reduction reduction = Reduction::mean;
    double label_smoothing = 0.0;
  };
  CrossEntropyLoss() : CrossEntropyLoss(Options{}) {}
  explicit CrossEntropyLoss(const Options& opts);
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }
  /// The class-weight buffer (undefined when not given).
  const Tensor& weight() const { return weight_; }

 private:
  Options opts_;
  Tensor weight_;
};

/// Negative log-likelihood of class-index targets given log-probabilities.
class NLLLoss : public Loss {
 public:
  struct Options {
    Tensor weight{};  ///< optional per-class weights (C)
    int64_t ignore_index = -100;
    Reduction reduction = Reduction::mean;
  };
  NLLLoss() : NLLLoss(Options{}) {}
  explicit NLLLoss(const Options& opts);
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }
  const Tensor& weight() const { return weight_; }

 private:
  Options opts_;
  Tensor weight_;
};

/// Mean squared error (input - target)^2.
class MSELoss : public Loss {
 public:
  struct Options {
    Reduction reduction = Reduction::mean;
  };
  MSELoss() : MSELoss(Options{}) {}
  explicit MSELoss(const Options& opts) : Loss("MSELoss"), opts_(opts) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

/// Mean absolute error |input - target|.
class L1Loss : public Loss {
 public:
  struct Options {
    Reduction reduction = Reduction::mean;
  };
  L1Loss() : L1Loss(Options{}) {}
  explicit L1Loss(const Options& opts) : Loss("L1Loss"), opts_(opts) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

/// Quadratic below beta, linear above (beta = 0: L1).
class SmoothL1Loss : public Loss {
 public:
  struct Options {
    Reduction reduction = Reduction::mean;
    double beta = 1.0;
  };
  SmoothL1Loss() : SmoothL1Loss(Options{}) {}
  explicit SmoothL1Loss(const Options& opts);
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

/// Sigmoid + binary cross entropy, computed stably from logits.
class BCEWithLogitsLoss : public Loss {
 public:
  struct Options {
    Tensor weight{};  ///< optional rescaling, broadcastable to the input
    Reduction reduction = Reduction::mean;
    Tensor pos_weight{};  ///< optional weight of positives, broadcastable to the input (e.g. (C))
  };
  BCEWithLogitsLoss() : BCEWithLogitsLoss(Options{}) {}
  explicit BCEWithLogitsLoss(const Options& opts);
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const Options& options() const { return opts_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& pos_weight() const { return pos_weight_; }

 private:
  Options opts_;
  Tensor weight_;
  Tensor pos_weight_;
};

}  // namespace zae::nn
