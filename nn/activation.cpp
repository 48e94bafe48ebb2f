#include "nn/activation.h"

#include <string>

#include "engine/ops/nn.h"

namespace zae::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor GELU::forward(const Tensor& x) { return gelu(x, opts_.approximate); }
std::string GELU::extra_repr() const {
  return std::string("approximate='") + (opts_.approximate == GeluApprox::tanh ? "tanh" : "none") + "'";
}

Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

Tensor Softmax::forward(const Tensor& x) { return softmax(x, opts_.dim); }
std::string Softmax::extra_repr() const { return "dim=" + std::to_string(opts_.dim); }

Tensor Identity::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "Identity: undefined input");
  return x;
}

Tensor Flatten::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "Flatten: undefined input");
  return x.flatten(opts_.start_dim, opts_.end_dim);
}
std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(opts_.start_dim) + ", end_dim=" + std::to_string(opts_.end_dim);
}

}  // namespace zae::nn
