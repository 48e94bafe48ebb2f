#include "nn/sched/one_cycle.h"

#include <cmath>
#include <numbers>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

namespace {
constexpr int kInitial = 0, kMax = 1, kMin = 2;
}

OneCycleLR::OneCycleLR(std::shared_ptr<optim::Optimizer> optimizer, const Options& options)
    : Scheduler("OneCycleLR", std::move(optimizer)), options_(options) {
  const Options& o = options_;
  const size_t groups = base_lrs_.size();
  if (o.total_steps != 0) {
    ZAE_CHECK(o.total_steps > 0, prefix(), "total_steps must be > 0, got ", o.total_steps);
    ZAE_CHECK(o.epochs == 0 && o.steps_per_epoch == 0, prefix(),
              "give total_steps or epochs and steps_per_epoch, not both (total_steps = ", o.total_steps,
              ", epochs = ", o.epochs, ", steps_per_epoch = ", o.steps_per_epoch, ")");
    total_steps_ = o.total_steps;
  } else {
    ZAE_CHECK(o.epochs > 0 && o.steps_per_epoch > 0, prefix(),
              "needs total_steps > 0, or epochs > 0 and steps_per_epoch > 0 (got epochs = ", o.epochs,
              ", steps_per_epoch = ", o.steps_per_epoch, ")");
    ZAE_CHECK(o.epochs <= INT64_MAX / o.steps_per_epoch, prefix(), "epochs * steps_per_epoch overflows");
    total_steps_ = o.epochs * o.steps_per_epoch;
  }
  ZAE_CHECK(o.max_lr.size() == 1 || o.max_lr.size() == groups, prefix(), "max_lr must hold 1 value or one per group (",
            groups, "), got ", o.max_lr.size(), " values");
  for (double v : o.max_lr) ZAE_CHECK(std::isfinite(v) && v > 0.0, prefix(), "max_lr must be finite and > 0, got ", o.max_lr);
  ZAE_CHECK(o.pct_start >= 0.0 && o.pct_start <= 1.0, prefix(), "pct_start must be in [0, 1], got ", o.pct_start);
  ZAE_CHECK(std::isfinite(o.div_factor) && o.div_factor > 0.0, prefix(), "div_factor must be finite and > 0, got ",
            o.div_factor);
  ZAE_CHECK(std::isfinite(o.final_div_factor) && o.final_div_factor > 0.0, prefix(),
            "final_div_factor must be finite and > 0, got ", o.final_div_factor);
  if (o.cycle_momentum) {
    for (double m : {o.base_momentum, o.max_momentum})
      ZAE_CHECK(m >= 0.0 && m < 1.0, prefix(), "base_momentum and max_momentum must be in [0, 1), got ",
                o.base_momentum, " and ", o.max_momentum);
    const auto& defaults = this->optimizer()->defaults();
    // PyTorch's rule: the Adam family's betas first, else momentum.
    momentum_key_ = defaults.count("beta1") ? "beta1" : defaults.count("momentum") ? "momentum" : "";
    ZAE_CHECK(!momentum_key_.empty(), prefix(), "cycle_momentum needs an optimizer with a 'momentum' or 'beta1' option; ",
              this->optimizer()->name(), " has neither (set cycle_momentum = false)");
  }

  for (size_t g = 0; g < groups; ++g) {
    const double max_lr = o.max_lr.size() == 1 ? o.max_lr[0] : o.max_lr[g];
    max_lrs_.push_back(max_lr);
    base_lrs_[g] = max_lr / o.div_factor;
    min_lrs_.push_back(base_lrs_[g] / o.final_div_factor);
  }

  const double t = static_cast<double>(total_steps_);
  // Phase ends exactly as Python computes them: the volatile products keep the compiler
  // from fusing "p * t - 1" into one FMA (-ffp-contract), which would move a boundary
  // such as 0.1 * 10 - 1 off zero and change which phase an integer step falls in.
  const volatile double warm_scaled = o.pct_start * t;
  const volatile double peak_scaled = 2.0 * o.pct_start * t;
  const double warm_end = warm_scaled - 1.0;
  if (o.three_phase) {
    phases_ = {{warm_end, kInitial, kMax, true, false},
               {peak_scaled - 2.0, kMax, kInitial, false, true},
               {t - 1.0, kInitial, kMin, true, true}};
  } else {
    phases_ = {{warm_end, kInitial, kMax, true, false}, {t - 1.0, kMax, kMin, false, true}};
  }
  double start = 0.0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    ZAE_CHECK(phases_[i].end_step != start, prefix(), "phase ", i, " of the schedule is empty (it ends at step ",
              phases_[i].end_step, " where it starts) with total_steps = ", total_steps_,
              " and pct_start = ", o.pct_start, "; change either");
    start = phases_[i].end_step;
  }
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (options_.anneal_strategy == AnnealStrategy::cos) {
    const double cos_out = std::cos(std::numbers::pi * pct) + 1.0;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

double OneCycleLR::lr_value(size_t group, int which) const {
  return which == kInitial ? base_lrs_[group] : which == kMax ? max_lrs_[group] : min_lrs_[group];
}

std::pair<const OneCycleLR::Phase*, double> OneCycleLR::locate(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "step must be >= 0, got ", step);
  ZAE_CHECK(step <= total_steps_, prefix(), "tried to step ", step, " times; the schedule has total_steps = ",
            total_steps_, " (one step past it is allowed, as in PyTorch)");
  const double n = static_cast<double>(step);
  double start = 0.0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& p = phases_[i];
    if (n <= p.end_step) return {&p, (n - start) / (p.end_step - start)};
    if (i + 1 == phases_.size()) return {&p, 1.0};  // n = total_steps: hold the final value
    start = p.end_step;
  }
  ZAE_FAIL(prefix(), "no phase");  // unreachable: the loop returns at the last phase
}

std::vector<double> OneCycleLR::lr_at(int64_t step) const {
  const auto [phase, pct] = locate(step);
  std::vector<double> lrs;
  for (size_t g = 0; g < base_lrs_.size(); ++g)
    lrs.push_back(anneal(lr_value(g, phase->start_lr), lr_value(g, phase->end_lr), pct));
  return lrs;
}

std::vector<double> OneCycleLR::momentum_at(int64_t step) const {
  ZAE_CHECK(options_.cycle_momentum, prefix(), "momentum_at: cycle_momentum is off");
  const auto [phase, pct] = locate(step);
  const double start = phase->start_momentum_max ? options_.max_momentum : options_.base_momentum;
  const double end = phase->end_momentum_max ? options_.max_momentum : options_.base_momentum;
  return std::vector<double>(base_lrs_.size(), anneal(start, end, pct));
}

void OneCycleLR::seek(int64_t step) {
  std::vector<double> lrs = lr_at(step);  // first: past the end it throws and nothing changes
  last_step_ = step;
  write_lrs(std::move(lrs));
  if (options_.cycle_momentum) {
    const std::vector<double> m = momentum_at(step);
    for (size_t g = 0; g < m.size(); ++g) optimizer()->set_option(momentum_key_, m[g], g);
  }
}

void OneCycleLR::rebase(const std::vector<double>&) {}  // the lrs follow max_lr, not the optimizer's lrs

void OneCycleLR::check_state(const SchedulerState& state) const {
  Scheduler::check_state(state);
  ZAE_CHECK(state.last_step <= total_steps_, prefix(), "load_state_dict: last_step ", state.last_step,
            " is past total_steps = ", total_steps_);
}

void OneCycleLR::load_state_dict(const SchedulerState& state) {
  Scheduler::load_state_dict(state);
  if (options_.cycle_momentum) {
    const std::vector<double> m = momentum_at(last_step_);
    for (size_t g = 0; g < m.size(); ++g) optimizer()->set_option(momentum_key_, m[g], g);
  }
}

}  // namespace zae::sched
