// Linear: y = x W^T + b over the last dim, as torch.nn.Linear. Parameters
// "weight" (out_features, in_features) and, when bias, "bias" (out_features);
// both start U[-1/sqrt(in_features), 1/sqrt(in_features)] (PyTorch's
// kaiming_uniform_(a = sqrt(5)) and bias rule) from the default generator.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace zae::nn {

class Linear : public Layer {
 public:
  struct Options {
    int64_t in_features = 0;
    int64_t out_features = 0;
    bool bias = true;
  };
  explicit Linear(const Options& opts);
  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : Linear(Options{.in_features = in_features, .out_features = out_features, .bias = bias}) {}

  /// x (..., in_features) -> (..., out_features).
  Tensor forward(const Tensor& x) override;
  /// Redraws the parameters as the constructor does.
  void reset_parameters();
  std::string extra_repr() const override;

  const Options& options() const { return opts_; }
  /// The registered handle (a copy of it shares the tensor: in-place ops and init apply).
  Tensor weight() const { return weight_; }
  /// Undefined when constructed with bias = false.
  Tensor bias() const { return bias_; }

 private:
  Options opts_;
  Tensor weight_;  // (out_features, in_features)
  Tensor bias_;    // (out_features) or undefined
};

}  // namespace zae::nn
