#include "nn/checkpoint.h"

#include "engine/autocast.h"
#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/error.h"
#include "engine/generator.h"

namespace zae::nn {

namespace {

/// Sets the default generator to (seed, offset) and restores what it was on destruction.
class GeneratorRewind {
 public:
  GeneratorRewind(uint64_t seed, uint64_t offset)
      : seed_(default_generator().seed()), offset_(default_generator().offset()) {
    default_generator().manual_seed(seed);
    default_generator().set_offset(offset);
  }
  ~GeneratorRewind() {
    default_generator().manual_seed(seed_);
    default_generator().set_offset(offset_);
  }
  GeneratorRewind(const GeneratorRewind&) = delete;
  GeneratorRewind& operator=(const GeneratorRewind&) = delete;

 private:
  uint64_t seed_, offset_;
};

}  // namespace

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const std::vector<Tensor>& params) {
  ZAE_CHECK(fn != nullptr, "checkpoint: no function given");
  ZAE_CHECK(x.defined(), "checkpoint: undefined input");
  std::vector<Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  if (!autograd::any_requires_grad(inputs)) return fn(x);

  const uint64_t seed = default_generator().seed(), offset = default_generator().offset();
  const DType low = autocast::enabled() ? autocast::low_dtype() : DType::float32;
  Tensor y;
  {
    NoGradGuard no_grad;
    y = fn(x);
  }
  ZAE_CHECK(y.defined(), "checkpoint: the function returned an undefined tensor");
  y = y.detach();  // a fresh tensor for the node to own
  autograd::record("CheckpointBackward", inputs, y, {x},
                   [fn, seed, offset, low, n = inputs.size(), params](const Tensor& g,
                                                                       const autograd::BackwardContext& ctx) {
                     std::vector<Tensor> grads(n);
                     Tensor xd = ctx.saved[0].detach();
                     if (ctx.needs(0)) xd.requires_grad_(true);
                     Tensor y2;
                     {
                       EnableGradGuard grad_on;
                       autocast::Guard cast(low);
                       GeneratorRewind rewind(seed, offset);
                       y2 = fn(xd);
                     }
                     // What the recomputed graph can give gradients to: x (if asked) and the
                     // parameters that need one.
                     std::vector<Tensor> wrt;
                     std::vector<size_t> slot;
                     if (ctx.needs(0)) wrt.push_back(xd), slot.push_back(0);
                     for (size_t i = 0; i < params.size(); ++i)
                       if (ctx.needs(i + 1)) wrt.push_back(params[i]), slot.push_back(i + 1);
                     if (wrt.empty() || !y2.requires_grad()) return grads;
                     std::vector<Tensor> got = autograd::grad({y2}, wrt, {g}, false, /*allow_unused=*/true);
                     for (size_t k = 0; k < got.size(); ++k) grads[slot[k]] = got[k];
                     return grads;
                   });
  return y;
}

Tensor checkpoint(Layer& module, const Tensor& x) {
  return checkpoint([&module](const Tensor& in) { return module.forward(in); }, x, module.parameters());
}

}  // namespace zae::nn
