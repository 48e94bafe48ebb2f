#include "nn/linear.h"

#include <cmath>

#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "nn/init.h"

namespace zae::nn {

Linear::Linear(const Options& opts) : Layer("Linear"), opts_(opts) {
  ZAE_CHECK(opts.in_features >= 0 && opts.out_features >= 0, "Linear: in_features and out_features must be >= 0, got ",
            opts.in_features, " and ", opts.out_features);
  weight_ = register_parameter("weight", empty({opts.out_features, opts.in_features}));
  if (opts.bias) bias_ = register_parameter("bias", empty({opts.out_features}));
  reset_parameters();
}

void Linear::reset_parameters() {
  // kaiming_uniform_(a = sqrt(5)) gives bound = 1 / sqrt(fan_in), as PyTorch's Linear.
  if (opts_.in_features > 0) {
    init::kaiming_uniform_(weight_, std::sqrt(5.0));
  } else {
    init::zeros_(weight_);
  }
  if (bias_.defined()) {
    const double bound = opts_.in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(opts_.in_features)) : 0.0;
    init::uniform_(bias_, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "Linear: undefined input");
  ZAE_CHECK(x.dim() >= 1 && x.size(-1) == opts_.in_features, "Linear(in_features=", opts_.in_features,
            ", out_features=", opts_.out_features, "): input of shape ", shape_str(x.shape()),
            " does not end in in_features=", opts_.in_features);
  return linear(x, weight_, bias_);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(opts_.in_features) + ", out_features=" + std::to_string(opts_.out_features) +
         ", bias=" + (bias_.defined() ? "True" : "False");
}

}  // namespace zae::nn
