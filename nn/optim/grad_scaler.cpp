// GradScaler (see grad_scaler.h for the math and the invariants).
// The inf/NaN check uses engine ops only, so it runs wherever the gradients live (CPU
// or CUDA): g * 0 is 0 for every finite element and NaN for inf and NaN, so sum(g * 0)
// is NaN exactly when g holds a non-finite element (a sum of zeros cannot overflow,
// unlike sum(|g|)). The per-gradient sums of one device are stacked and summed, and
// each device's total is read once.
#include "nn/optim/grad_scaler.h"

#include <cmath>
#include <utility>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/ops/binary.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"

namespace zae::optim {
namespace {

// `v` as the float32 scale, or an error naming `what` and the value.
float to_scale(double v, const char* what) {
  ZAE_CHECK(std::isfinite(v) && v > 0.0, "GradScaler: ", what, " must be finite and > 0, got ", v);
  const float f = static_cast<float>(v);
  ZAE_CHECK(std::isfinite(f) && f > 0.0f, "GradScaler: ", what, " = ", v,
            " is not representable as a finite, positive float32 (the scale is kept in float32, as in PyTorch)");
  return f;
}

// g *= inv in place, in PyTorch's arithmetic for g's dtype (float16 was refused before).
void unscale_one(Tensor& g, float inv) {
  if (g.dtype() == DType::bfloat16) {
    // float32(g) * inv rounded to float32, then rounded to bfloat16 (PyTorch's opmath);
    // multiplying in bfloat16 would round inv itself to bfloat16 first.
    Tensor f = g.to(DType::float32);
    f.mul_(static_cast<double>(inv));
    g.copy_(f);
  } else {
    // float32: the scalar becomes float32(inv) exactly; float64: double(inv) exactly.
    g.mul_(static_cast<double>(inv));
  }
}

}  // namespace

GradScaler::GradScaler(GradScalerOptions options) : options_(options) {
  scale_ = to_scale(options_.init_scale, "init_scale");
  ZAE_CHECK(std::isfinite(options_.growth_factor) && options_.growth_factor > 1.0,
            "GradScaler: growth_factor must be finite and > 1, got ", options_.growth_factor);
  ZAE_CHECK(options_.backoff_factor > 0.0 && options_.backoff_factor < 1.0,
            "GradScaler: backoff_factor must be in (0, 1), got ", options_.backoff_factor);
  ZAE_CHECK(options_.growth_interval >= 1, "GradScaler: growth_interval must be >= 1, got ",
            options_.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  ZAE_CHECK(loss.defined(), "GradScaler::scale: the loss is an undefined tensor");
  if (!options_.enabled) return loss;
  ZAE_CHECK(is_floating(loss.dtype()), "GradScaler::scale: the loss must have a floating dtype, got ", loss.dtype());
  return mul(loss, static_cast<double>(scale_));
}

void GradScaler::unscale_(Optimizer& opt) {
  if (!options_.enabled) return;
  auto it = per_optimizer_.find(&opt);
  const Stage stage = it == per_optimizer_.end() ? Stage::ready : it->second.stage;
  ZAE_CHECK(stage != Stage::unscaled, "GradScaler::unscale_: already called on this ", opt.name(),
            " optimizer since the last update() (unscale_ at most once per optimizer per step)");
  ZAE_CHECK(stage != Stage::stepped, "GradScaler::unscale_: called after step() on this ", opt.name(),
            " optimizer; call update() before the next unscale_");

  // Gather and validate before touching anything.
  const std::vector<Tensor> params = opt.parameters();
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    ZAE_CHECK(g.dtype() != DType::float16, "GradScaler::unscale_: parameter ", i, " of the ", opt.name(),
              " optimizer (shape ", shape_str(params[i].shape()), ") has a float16 gradient; unscaling float16 "
              "gradients is refused, as in PyTorch: keep float32 master weights and cast them in the forward");
    ZAE_CHECK(is_floating(g.dtype()), "GradScaler::unscale_: parameter ", i, " has a gradient of non-floating dtype ",
              g.dtype());
    grads.push_back(g);
  }
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale_));
  ZAE_CHECK(std::isfinite(inv), "GradScaler::unscale_: the scale ", static_cast<double>(scale_),
            " is so small that 1/scale overflows float32: repeated backoffs after inf/NaN gradients at every step "
            "(the model produces non-finite gradients whatever the scale)");

  NoGradGuard no_grad;
  // 1. The check, on the incoming (scaled) values as PyTorch does: per device, the sums
  //    of g * 0 (float32), to be added up and read once.
  std::vector<std::pair<Device, std::vector<Tensor>>> checks;
  for (const Tensor& g : grads) {
    Tensor s = sum(mul(g, 0.0));
    if (s.dtype() != DType::float32) s = s.to(DType::float32);
    auto bucket = checks.begin();
    while (bucket != checks.end() && !(bucket->first == g.device())) ++bucket;
    if (bucket == checks.end()) bucket = checks.insert(checks.end(), {g.device(), {}});
    bucket->second.push_back(s);
  }
  // 2. Unscale in place (queued after the checks on each device's stream).
  if (inv != 1.0f)
    for (Tensor& g : grads) unscale_one(g, inv);
  // 3. Read the flags (the sync).
  bool found = false;
  for (const auto& [device, sums] : checks) {
    const double total = sums.size() == 1 ? sums[0].item() : sum(stack(sums)).item();
    if (!std::isfinite(total)) found = true;
  }

  PerOptimizer& st = per_optimizer_[&opt];
  st.stage = Stage::unscaled;
  st.checked = !grads.empty();
  st.found_inf = found;
}

bool GradScaler::step(Optimizer& opt) {
  if (!options_.enabled) {
    opt.step();
    return true;
  }
  auto it = per_optimizer_.find(&opt);
  if (it != per_optimizer_.end())
    ZAE_CHECK(it->second.stage != Stage::stepped, "GradScaler::step: step() has already been called on this ",
              opt.name(), " optimizer since the last update()");
  if (it == per_optimizer_.end() || it->second.stage == Stage::ready) unscale_(opt);
  PerOptimizer& st = per_optimizer_.at(&opt);
  if (!st.checked) {
    // No gradient was touched: back to ready, so that a retry after backward works.
    per_optimizer_.erase(&opt);
    ZAE_FAIL("GradScaler::step: no inf/NaN check was recorded for this ", opt.name(),
             " optimizer: none of its parameters has a gradient (did backward run on the scaled loss?)");
  }
  const bool skip = st.found_inf;
  if (!skip) opt.step();
  st.stage = Stage::stepped;
  return !skip;
}

void GradScaler::update() {
  if (!options_.enabled) return;
  bool checked = false;
  bool found = false;
  for (const auto& [opt, st] : per_optimizer_) {
    checked = checked || st.checked;
    found = found || st.found_inf;
  }
  if (!checked) {
    // Every recorded optimizer had no gradient (nothing was unscaled): forget them.
    per_optimizer_.clear();
    ZAE_FAIL("GradScaler::update: no inf/NaN check was recorded since the last update(); call step(opt) "
             "(or unscale_(opt)) on an optimizer whose parameters have gradients first");
  }
  if (found) {
    scale_ = static_cast<float>(static_cast<double>(scale_) * options_.backoff_factor);
    growth_tracker_ = 0;
  } else if (growth_tracker_ + 1 >= options_.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(scale_) * options_.growth_factor);
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  } else {
    ++growth_tracker_;
  }
  per_optimizer_.clear();
}

void GradScaler::update(double new_scale) {
  if (!options_.enabled) return;
  scale_ = to_scale(new_scale, "update(new_scale): new_scale");
  per_optimizer_.clear();
}

double GradScaler::get_scale() const { return options_.enabled ? static_cast<double>(scale_) : 1.0; }

int64_t GradScaler::growth_tracker() const { return options_.enabled ? growth_tracker_ : 0; }

bool GradScaler::found_inf() const {
  for (const auto& [opt, st] : per_optimizer_)
    if (st.found_inf) return true;
  return false;
}

GradScaler::State GradScaler::state() const { return {get_scale(), growth_tracker()}; }

void GradScaler::load_state(const State& state) {
  if (!options_.enabled) return;
  const float s = to_scale(state.scale, "load_state: scale");
  ZAE_CHECK(state.growth_tracker >= 0, "GradScaler: load_state: growth_tracker must be >= 0, got ",
            state.growth_tracker);
  scale_ = s;
  growth_tracker_ = state.growth_tracker;
}

}  // namespace zae::optim
