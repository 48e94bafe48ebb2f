// Dropout: in training mode zeroes each element with probability p and scales
// the rest by 1 / (1 - p), drawing the mask from the default generator; in eval
// mode (or p == 0) it returns its input unchanged. As torch.nn.Dropout.
#pragma once

#include "nn/module.h"

namespace zae::nn {

class Dropout : public Layer {
 public:
  struct Options {
    double p = 0.5;
  };
  Dropout() : Dropout(Options{}) {}
  explicit Dropout(const Options& opts);
  explicit Dropout(double p) : Dropout(Options{.p = p}) {}

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

}  // namespace zae::nn
