// Stateless layers: activations, Softmax, Identity and Flatten, as their
// torch.nn namesakes (same printed form). None has parameters or buffers; each
// forward delegates to one functional op and works for any shape.
#pragma once

#include <cstdint>

#include "engine/ops/unary.h"
#include "nn/module.h"

namespace zae::nn {

/// max(x, 0).
class ReLU : public Layer {
 public:
  ReLU() : Layer("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

/// x * Phi(x), exact (erf) or with the tanh approximation.
class GELU : public Layer {
 public:
  struct Options {
    GeluApprox approximate = GeluApprox::none;
  };
  GELU() : GELU(Options{}) {}
  explicit GELU(const Options& opts) : Layer("GELU"), opts_(opts) {}
  Tensor forward(const Tensor& x) override;
  /// "approximate='none'" or "approximate='tanh'".
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

/// x * sigmoid(x) (swish).
class SiLU : public Layer {
 public:
  SiLU() : Layer("SiLU") {}
  Tensor forward(const Tensor& x) override;
};

class Tanh : public Layer {
 public:
  Tanh() : Layer("Tanh") {}
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Layer {
 public:
  Sigmoid() : Layer("Sigmoid") {}
  Tensor forward(const Tensor& x) override;
};

/// Softmax along `dim` (negative counts from the end). Unlike PyTorch, whose dim
/// defaults to an implicit, deprecated choice, the default here is the last dim.
class Softmax : public Layer {
 public:
  struct Options {
    int64_t dim = -1;
  };
  Softmax() : Softmax(Options{}) {}
  explicit Softmax(const Options& opts) : Layer("Softmax"), opts_(opts) {}
  explicit Softmax(int64_t dim) : Softmax(Options{.dim = dim}) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

/// Returns its input (the same handle: no copy, no graph node).
class Identity : public Layer {
 public:
  Identity() : Layer("Identity") {}
  Tensor forward(const Tensor& x) override;
};

/// Merges dims start_dim..end_dim into one (a view when the strides allow).
class Flatten : public Layer {
 public:
  struct Options {
    int64_t start_dim = 1;
    int64_t end_dim = -1;
  };
  Flatten() : Flatten(Options{}) {}
  explicit Flatten(const Options& opts) : Layer("Flatten"), opts_(opts) {}
  Flatten(int64_t start_dim, int64_t end_dim) : Flatten(Options{.start_dim = start_dim, .end_dim = end_dim}) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

}  // namespace zae::nn
