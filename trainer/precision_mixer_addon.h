// PrecisionMixerAddon: mixed precision training (the seed's add-on, done right).
//
//   class MyTrainer : public zae::Trainer::add_on<zae::PrecisionMixerAddon> { ... };
//   MyTrainer t(options, zae::PrecisionMixerAddon::Options{.precision = "auto"});
//
// precision: "auto" = bfloat16 on CUDA devices of compute capability >= 8.0, float16
// below, float32 on the CPU (with a one-line notice: the CPU has no fast low-precision
// GEMM here, and upstream's error helps nobody); "bf16", "fp16" (also honoured on the CPU,
// where they are slow but exact enough to test with); "fp32" (off).
// Each train and test step runs inside an autocast region (engine/autocast.h): matmul,
// linear and convolutions in the low precision with float32 accumulation; softmax,
// layer_norm, losses and reductions in float32. Parameters stay float32 (master weights),
// so do their gradients and the optimizer's state: bf16 is really bf16 (upstream ran fp16).
// fp16 adds dynamic loss scaling (nn/optim/grad_scaler.h): the loss is scaled before
// backward, gradients are unscaled before clipping and the step, a step whose gradients hold
// an inf/NaN is skipped (Trainer::skip_optimizer_step) and the scale backs off; the scaler's
// state is saved in checkpoints (StateManagerAddon) and restored on resume.
// Invariants: list it before MultiGPUAddon (which must be last), so that gradients are
// averaged over ranks before they are unscaled and checked (all ranks then skip together).
#pragma once

#include <cstdio>
#include <string>

#include "engine/autocast.h"
#include "io/state_json.h"
#include "nn/optim/grad_scaler.h"
#include "trainer/trainer.h"

namespace zae {

struct PrecisionMixerOptions {
  std::string precision = "auto";     ///< auto | bf16 | fp16 | fp32
  optim::GradScalerOptions scaler{};  ///< fp16 only
};

namespace detail {
/// The low dtype for `precision` on `device` (float32 = off); prints the CPU notice for auto.
DType resolve_precision(const std::string& precision, Device device);
}  // namespace detail

struct PrecisionMixerAddon : AddOnBase {
  using Options = PrecisionMixerOptions;

  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(t, args...),
          low_(detail::resolve_precision(detail::pick_options<Options>(args...).precision, this->device())),
          scaler_(scaler_options(detail::pick_options<Options>(args...).scaler, low_)) {}

    /// The precision in use: bfloat16, float16 or float32 (off).
    DType precision() const { return low_; }
    optim::GradScaler& scaler() { return scaler_; }
    const optim::GradScaler& scaler() const { return scaler_; }

    void run_batch(const Batch& batch) override {
      autocast::Guard autocast(low_);
      Base::run_batch(batch);
    }
    void backward(const Tensor& loss) override { Base::backward(scaler_.enabled() ? scaler_.scale(loss) : loss); }
    void optimizer_step() override {
      autocast::Suspend no_autocast;  // the update runs on the float32 master weights
      if (!scaler_.enabled()) {
        Base::optimizer_step();
        return;
      }
      scaler_.unscale_(*this->options().optimizer);  // true gradients for clipping and the step
      if (scaler_.found_inf()) {
        this->skip_optimizer_step();
        scaler_.update();
        return;
      }
      Base::optimizer_step();
      scaler_.update();
    }
    void save_addon_state(io::json::Value& extras) const override {
      Base::save_addon_state(extras);
      if (!scaler_.enabled()) return;
      io::json::Value s = io::json::Value::make_object();
      const auto st = scaler_.state();
      io::state::put(s, "scale", io::state::number(st.scale));
      io::state::put(s, "growth_tracker", io::state::integer(st.growth_tracker));
      io::state::put(extras, "grad_scaler", std::move(s));
    }
    void load_addon_state(const io::json::Value& extras) override {
      Base::load_addon_state(extras);
      if (!scaler_.enabled() || !io::state::has(extras, "grad_scaler")) return;
      const auto& s = io::state::get(extras, "grad_scaler", "checkpoint extras");
      optim::GradScaler::State st;
      st.scale = io::state::get_double(s, "scale", "grad_scaler");
      st.growth_tracker = io::state::get_int(s, "growth_tracker", "grad_scaler");
      scaler_.load_state(st);
    }

   private:
    static optim::GradScalerOptions scaler_options(optim::GradScalerOptions o, DType low) {
      o.enabled = o.enabled && low == DType::float16;
      return o;
    }
    DType low_;
    optim::GradScaler scaler_;
  };
};

}  // namespace zae
