#include "nn/dropout.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include "engine/ops/nn.h"
#include "nn/repr.h"

namespace zae::nn {
Dropout::Dropout(const Options& opts) : Layer("Dropout"), opts_(opts) {
  ZAE_CHECK(opts.p >= 0.0 && opts.p <= 1.0, "Dropout: probability p must be in [0, 1], got ", opts.p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, opts_.p, is_training()); }

std::string Dropout::extra_repr() const { return "p=" + python_float_repr(opts_.p) + ", inplace=False"; }

}  // namespace zae::nn
