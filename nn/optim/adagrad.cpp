// Adagrad: option checks and the step, one kernels::cpu::adagrad_step call (or
// kernels::cuda::adagrad_step for CUDA parameters) per group and dtype.
#include "nn/optim/adagrad.h"

#include <utility>

#include "engine/autograd/grad_mode.h"
#include "kernels/cpu/optim.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/optim.h"
#endif

namespace zae::optim {

Options AdagradOptions::to_map() const {
  return {{"lr", lr},
          {"lr_decay", lr_decay},
          {"weight_decay", weight_decay},
          {"initial_accumulator_value", initial_accumulator_value},
          {"eps", eps},
          {"maximize", maximize ? 1.0 : 0.0}};
}

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions options)
    : Adagrad(std::vector<ParamGroup>{{std::move(params), {}}}, options) {}

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options) : Optimizer("Adagrad", options.to_map()) {
  init_groups(std::move(groups));
}

void Adagrad::validate(const Options& o) const {
  require_non_negative(o, "lr");
  require_non_negative(o, "lr_decay");
  require_non_negative(o, "weight_decay");
  require_non_negative(o, "initial_accumulator_value");
  require_non_negative(o, "eps");
  require_bool(o, "maximize");
}

void Adagrad::step() {
  NoGradGuard no_grad;
  auto batches = prepare_step();
  for (size_t g = 0; g < batches.size(); ++g) {
    const Options& o = groups()[g].options;
    kernels::cpu::AdagradHyper h{.lr = o.at("lr"),
                                 .lr_decay = o.at("lr_decay"),
                                 .weight_decay = o.at("weight_decay"),
                                 .eps = o.at("eps"),
                                 .maximize = o.at("maximize") != 0.0};
    const double init = o.at("initial_accumulator_value");
    for (const Batch& b : batches[g]) {
      std::vector<double> steps(b.params.size());
      for (size_t i = 0; i < b.params.size(); ++i) {
        auto& st = *b.states[i];
        steps[i] = increment_step(st);
        buffer(st, "sum", b.params[i], init);
      }
      dispatch_floating(b.dtype, name(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        auto params = b.param_ptrs<T>();
        auto grads = b.grad_ptrs<T>();
        auto sum = b.state_ptrs<acc_t<T>>("sum");
        if (b.device.is_cuda()) {
#ifdef ZAE_WITH_CUDA
          cuda::DeviceGuard guard(b.device.index);
          kernels::cuda::adagrad_step<T>(h, b.n(), params.data(), grads.data(), sum.data(), steps.data(),
                                         b.sizes.data(), cuda::current_stream(b.device.index));
#else
          ZAE_FAIL(name(), ": not implemented for device ", b.device, " in this build");
#endif
        } else {
          kernels::cpu::adagrad_step<T>(h, b.n(), params.data(), grads.data(), sum.data(), steps.data(),
                                        b.sizes.data());
        }
      });
      finish(b);
    }
  }
}

}  // namespace zae::optim
