// Adam / AdamW: option checks and the step, one kernels::cpu::adam_step call (or
// kernels::cuda::adam_step for CUDA parameters) per group and dtype (AdamW passes
// decoupled_weight_decay), with master weights, stochastic rounding and the capturable
// mode passed as kernels::cpu::StepExtras.
#include "nn/optim/adam.h"

#include <utility>

#include "engine/autograd/grad_mode.h"
#include "kernels/cpu/optim.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/optim.h"
#endif

namespace zae::optim {

namespace {

template <class O>
Options adam_map(const O& o) {
  return {{"lr", o.lr},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"amsgrad", o.amsgrad ? 1.0 : 0.0},
          {"maximize", o.maximize ? 1.0 : 0.0},
          {"master_weights", o.master_weights ? 1.0 : 0.0},
          {"stochastic_rounding", o.stochastic_rounding ? 1.0 : 0.0},
          {"seed", o.seed}};
}

}  // namespace

Options AdamOptions::to_map() const { return adam_map(*this); }
Options AdamWOptions::to_map() const { return adam_map(*this); }

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam("Adam", std::vector<ParamGroup>{{std::move(params), {}}}, options.to_map(), false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam("Adam", std::move(groups), options.to_map(), false) {}

Adam::Adam(std::string name, std::vector<ParamGroup> groups, Options defaults, bool decoupled_weight_decay)
    : Optimizer(std::move(name), std::move(defaults)), decoupled_weight_decay_(decoupled_weight_decay) {
  init_groups(std::move(groups));
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : Adam("AdamW", std::vector<ParamGroup>{{std::move(params), {}}}, options.to_map(), true) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Adam("AdamW", std::move(groups), options.to_map(), true) {}

void Adam::validate(const Options& o) const {
  require_non_negative(o, "lr");
  require_non_negative(o, "eps");
  require_unit_interval(o, "beta1");
  require_unit_interval(o, "beta2");
  require_non_negative(o, "weight_decay");
  require_bool(o, "amsgrad");
  require_bool(o, "maximize");
  require_low_precision(o);
}

void Adam::step() {
  NoGradGuard no_grad;
  const bool cap = capturable();
  if (cap) begin_capturable_step();
  auto batches = prepare_step();
  for (size_t g = 0; g < batches.size(); ++g) {
    const Options& o = groups()[g].options;
    kernels::cpu::AdamHyper h{.lr = o.at("lr"),
                              .beta1 = o.at("beta1"),
                              .beta2 = o.at("beta2"),
                              .eps = o.at("eps"),
                              .weight_decay = o.at("weight_decay"),
                              .amsgrad = o.at("amsgrad") != 0.0,
                              .maximize = o.at("maximize") != 0.0,
                              .decoupled_weight_decay = decoupled_weight_decay_};
    const bool master_on = o.at("master_weights") != 0.0;
    const bool sr = o.at("stochastic_rounding") != 0.0;
    for (const Batch& b : batches[g]) {
      std::vector<double> steps(b.params.size());
      std::vector<float*> counters, masters(b.params.size(), nullptr);
      for (size_t i = 0; i < b.params.size(); ++i) {
        auto& st = *b.states[i];
        if (cap)
          counters.push_back(step_counter(st, b.params[i]));
        else
          steps[i] = increment_step(st);
        buffer(st, "exp_avg", b.params[i]);
        buffer(st, "exp_avg_sq", b.params[i]);
        if (h.amsgrad) buffer(st, "max_exp_avg_sq", b.params[i]);
        masters[i] = master_buffer(st, b.params[i], master_on);
      }
      kernels::cpu::StepExtras x;
      x.master = masters.data();
      x.stochastic_rounding = sr;
      x.seed = sr ? rounding_seed(g) : 0;
      x.tensor_ids = b.ids.data();
      if (cap) {
        x.hyper = hyper_data(g);
        x.step_counts = counters.data();
      }
      const double* step_ptr = cap ? nullptr : steps.data();
      dispatch_floating(b.dtype, name(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        using S = acc_t<T>;
        auto params = b.param_ptrs<T>();
        auto grads = b.grad_ptrs<T>();
        auto m = b.state_ptrs<S>("exp_avg");
        auto v = b.state_ptrs<S>("exp_avg_sq");
        auto vmax = b.state_ptrs<S>("max_exp_avg_sq");
        if (b.device.is_cuda()) {
#ifdef ZAE_WITH_CUDA
          cuda::DeviceGuard guard(b.device.index);
          kernels::cuda::adam_step<T>(h, b.n(), params.data(), grads.data(), m.data(), v.data(), vmax.data(),
                                      step_ptr, b.sizes.data(), cuda::current_stream(b.device.index), x);
#else
          ZAE_FAIL(name(), ": not implemented for device ", b.device, " in this build");
#endif
        } else {
          kernels::cpu::adam_step<T>(h, b.n(), params.data(), grads.data(), m.data(), v.data(), vmax.data(),
                                     step_ptr, b.sizes.data(), x);
        }
      });
      finish(b);
    }
  }
}

}  // namespace zae::optim
