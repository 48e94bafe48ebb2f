// SGD: option checks and the step, one kernels::cpu::sgd_step call (kernels::cuda::sgd_step
// for CUDA parameters) per group and dtype.
#include "nn/optim/sgd.h"

#include <utility>

#include "engine/autograd/grad_mode.h"
#include "kernels/cpu/optim.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/optim.h"
#endif

namespace zae::optim {

Options SGDOptions::to_map() const {
  return {{"lr", lr},
          {"momentum", momentum},
          {"dampening", dampening},
          {"weight_decay", weight_decay},
          {"nesterov", nesterov ? 1.0 : 0.0},
          {"maximize", maximize ? 1.0 : 0.0},
          {"master_weights", master_weights ? 1.0 : 0.0},
          {"stochastic_rounding", stochastic_rounding ? 1.0 : 0.0},
          {"seed", seed}};
}

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<ParamGroup>{{std::move(params), {}}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : Optimizer("SGD", options.to_map()) {
  init_groups(std::move(groups));
}

void SGD::validate(const Options& o) const {
  require_non_negative(o, "lr");
  require_non_negative(o, "momentum");
  require_non_negative(o, "weight_decay");
  require_bool(o, "nesterov");
  require_bool(o, "maximize");
  require_low_precision(o);
  if (o.at("nesterov") != 0.0) {
    require(o, "momentum", o.at("momentum") > 0.0, "> 0 with nesterov = 1: Nesterov momentum requires a momentum");
    require(o, "dampening", o.at("dampening") == 0.0, "0 with nesterov = 1: Nesterov momentum requires zero dampening");
  }
}

void SGD::step() {
  NoGradGuard no_grad;
  const bool cap = capturable();
  if (cap) begin_capturable_step();
  auto batches = prepare_step();
  for (size_t g = 0; g < batches.size(); ++g) {
    const Options& o = groups()[g].options;
    kernels::cpu::SgdHyper h{.lr = o.at("lr"),
                             .momentum = o.at("momentum"),
                             .dampening = o.at("dampening"),
                             .weight_decay = o.at("weight_decay"),
                             .nesterov = o.at("nesterov") != 0.0,
                             .maximize = o.at("maximize") != 0.0};
    const bool master_on = o.at("master_weights") != 0.0;
    const bool sr = o.at("stochastic_rounding") != 0.0;
    for (const Batch& b : batches[g]) {
      std::vector<uint8_t> fresh(b.params.size(), 0);
      std::vector<double> steps;
      std::vector<float*> counters, masters(b.params.size(), nullptr);
      for (size_t i = 0; i < b.params.size(); ++i) {
        auto& st = *b.states[i];
        if (h.momentum != 0.0) {
          fresh[i] = st.count("momentum_buffer") == 0;
          buffer(st, "momentum_buffer", b.params[i]);
        }
        masters[i] = master_buffer(st, b.params[i], master_on);
        if (sr) {  // the rounding stream's step
          if (cap)
            counters.push_back(step_counter(st, b.params[i]));
          else
            steps.push_back(increment_step(st));
        }
      }
      kernels::cpu::StepExtras x;
      x.master = masters.data();
      x.stochastic_rounding = sr;
      x.seed = sr ? rounding_seed(g) : 0;
      x.tensor_ids = b.ids.data();
      if (sr && !cap) x.sr_steps = steps.data();
      if (cap) {
        x.hyper = hyper_data(g);
        if (sr) x.step_counts = counters.data();
      }
      dispatch_floating(b.dtype, name(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        auto params = b.param_ptrs<T>();
        auto grads = b.grad_ptrs<T>();
        auto bufs = b.state_ptrs<acc_t<T>>("momentum_buffer");
        if (b.device.is_cuda()) {
#ifdef ZAE_WITH_CUDA
          cuda::DeviceGuard guard(b.device.index);
          kernels::cuda::sgd_step<T>(h, b.n(), params.data(), grads.data(), bufs.data(), fresh.data(), b.sizes.data(),
                                     cuda::current_stream(b.device.index), x);
#else
          ZAE_FAIL(name(), ": not implemented for device ", b.device, " in this build");
#endif
        } else {
          kernels::cpu::sgd_step<T>(h, b.n(), params.data(), grads.data(), bufs.data(), fresh.data(), b.sizes.data(),
                                    x);
        }
      });
      finish(b);
    }
  }
}

}  // namespace zae::optim
