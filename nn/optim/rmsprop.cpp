// RMSprop: option checks and the step, one kernels::cpu::rmsprop_step call (or
// kernels::cuda::rmsprop_step for CUDA parameters) per group and dtype.
#include "nn/optim/rmsprop.h"

#include <utility>

#include "engine/autograd/grad_mode.h"
#include "kernels/cpu/optim.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/optim.h"
#endif

namespace zae::optim {

Options RMSpropOptions::to_map() const {
  return {{"lr", lr},
          {"alpha", alpha},
          {"eps", eps},
          {"weight_decay", weight_decay},
          {"momentum", momentum},
          {"centered", centered ? 1.0 : 0.0},
          {"maximize", maximize ? 1.0 : 0.0}};
}

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options)
    : RMSprop(std::vector<ParamGroup>{{std::move(params), {}}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options) : Optimizer("RMSprop", options.to_map()) {
  init_groups(std::move(groups));
}

void RMSprop::validate(const Options& o) const {
  require_non_negative(o, "lr");
  require_non_negative(o, "eps");
  require_non_negative(o, "momentum");
  require_non_negative(o, "weight_decay");
  require_non_negative(o, "alpha");
  require_bool(o, "centered");
  require_bool(o, "maximize");
}

void RMSprop::step() {
  NoGradGuard no_grad;
  auto batches = prepare_step();
  for (size_t g = 0; g < batches.size(); ++g) {
    const Options& o = groups()[g].options;
    kernels::cpu::RmspropHyper h{.lr = o.at("lr"),
                                 .alpha = o.at("alpha"),
                                 .eps = o.at("eps"),
                                 .weight_decay = o.at("weight_decay"),
                                 .momentum = o.at("momentum"),
                                 .centered = o.at("centered") != 0.0,
                                 .maximize = o.at("maximize") != 0.0};
    for (const Batch& b : batches[g]) {
      for (size_t i = 0; i < b.params.size(); ++i) {
        auto& st = *b.states[i];
        increment_step(st);
        buffer(st, "square_avg", b.params[i]);
        if (h.centered) buffer(st, "grad_avg", b.params[i]);
        if (h.momentum > 0) buffer(st, "momentum_buffer", b.params[i]);
      }
      dispatch_floating(b.dtype, name(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        using S = acc_t<T>;
        auto params = b.param_ptrs<T>();
        auto grads = b.grad_ptrs<T>();
        auto sq = b.state_ptrs<S>("square_avg");
        auto ga = b.state_ptrs<S>("grad_avg");
        auto buf = b.state_ptrs<S>("momentum_buffer");
        if (b.device.is_cuda()) {
#ifdef ZAE_WITH_CUDA
          cuda::DeviceGuard guard(b.device.index);
          kernels::cuda::rmsprop_step<T>(h, b.n(), params.data(), grads.data(), sq.data(), ga.data(), buf.data(),
                                         b.sizes.data(), cuda::current_stream(b.device.index));
#else
          ZAE_FAIL(name(), ": not implemented for device ", b.device, " in this build");
#endif
        } else {
          kernels::cpu::rmsprop_step<T>(h, b.n(), params.data(), grads.data(), sq.data(), ga.data(), buf.data(),
                                        b.sizes.data());
        }
      });
      finish(b);
    }
  }
}

}  // namespace zae::optim
