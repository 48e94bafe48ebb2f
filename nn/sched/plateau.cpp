#include "nn/sched/plateau.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

ReduceLROnPlateau::ReduceLROnPlateau(std::shared_ptr<optim::Optimizer> optimizer, const Options& options)
    : Scheduler("ReduceLROnPlateau", std::move(optimizer)), options_(options) {
  const Options& o = options_;
  ZAE_CHECK(o.mode == PlateauMode::min || o.mode == PlateauMode::max, prefix(), "mode must be min or max");
  ZAE_CHECK(o.threshold_mode == ThresholdMode::rel || o.threshold_mode == ThresholdMode::abs, prefix(),
            "threshold_mode must be rel or abs");
  ZAE_CHECK(o.factor > 0.0 && o.factor < 1.0, prefix(), "factor must be in (0, 1), got ", o.factor);
  ZAE_CHECK(o.patience >= 0, prefix(), "patience must be >= 0, got ", o.patience);
  ZAE_CHECK(std::isfinite(o.threshold) && o.threshold >= 0.0, prefix(), "threshold must be finite and >= 0, got ",
            o.threshold);
  ZAE_CHECK(o.cooldown >= 0, prefix(), "cooldown must be >= 0, got ", o.cooldown);
  ZAE_CHECK(std::isfinite(o.eps) && o.eps >= 0.0, prefix(), "eps must be finite and >= 0, got ", o.eps);
  const size_t groups = base_lrs_.size();
  ZAE_CHECK(o.min_lr.size() == 1 || o.min_lr.size() == groups, prefix(), "min_lr must hold 1 value or one per group (",
            groups, "), got ", o.min_lr.size(), " values");
  for (double v : o.min_lr) ZAE_CHECK(std::isfinite(v) && v >= 0.0, prefix(), "min_lr must be finite and >= 0, got ", o.min_lr);
  for (size_t g = 0; g < groups; ++g) min_lrs_.push_back(o.min_lr.size() == 1 ? o.min_lr[0] : o.min_lr[g]);
  best_ = o.mode == PlateauMode::min ? kInf : -kInf;
}

void ReduceLROnPlateau::step() {
  ZAE_FAIL(prefix(), "step() needs the monitored metric: call step(metric) (e.g. the validation loss)");
}

bool ReduceLROnPlateau::is_better(double a) const {
  const double t = options_.threshold;
  const bool rel = options_.threshold_mode == ThresholdMode::rel;
  if (options_.mode == PlateauMode::min) return rel ? a < best_ * (1.0 - t) : a < best_ - t;
  return rel ? a > best_ * (t + 1.0) : a > best_ + t;
}

void ReduceLROnPlateau::step(double metric) {
  // Read the current lrs first: a changed group count fails here, before any counter moves.
  const auto& opt = optimizer();
  ZAE_CHECK(opt->num_groups() == base_lrs_.size(), prefix(), "the optimizer (", opt->name(), ") now has ",
            opt->num_groups(), " parameter groups but the scheduler was built for ", base_lrs_.size());
  std::vector<double> lrs;
  for (size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(opt->lr(g));

  ++last_step_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience) {
    for (size_t g = 0; g < lrs.size(); ++g) {
      const double new_lr = std::max(lrs[g] * options_.factor, min_lrs_[g]);
      if (lrs[g] - new_lr > options_.eps) lrs[g] = new_lr;
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  write_lrs(std::move(lrs));
}

SchedulerState ReduceLROnPlateau::state_dict() const {
  SchedulerState s = Scheduler::state_dict();
  s.scalars = {{"best", best_},
               {"num_bad_epochs", static_cast<double>(num_bad_epochs_)},
               {"cooldown_counter", static_cast<double>(cooldown_counter_)}};
  return s;
}

void ReduceLROnPlateau::check_state(const SchedulerState& state) const {
  check_common(state);
  ZAE_CHECK(state.children.empty(), prefix(), "load_state_dict: the state has ", state.children.size(),
            " chained schedulers, this scheduler has none");
  ZAE_CHECK(state.scalars.size() == 3, prefix(), "load_state_dict: expected the scalars best, num_bad_epochs and "
            "cooldown_counter, got ", state.scalars.size(), " scalars");
  for (const char* key : {"best", "num_bad_epochs", "cooldown_counter"})
    ZAE_CHECK(state.scalars.count(key), prefix(), "load_state_dict: missing scalar '", key, "'");
  const double best = state.scalars.at("best");
  ZAE_CHECK(!std::isnan(best), prefix(), "load_state_dict: best is NaN");
  for (const char* key : {"num_bad_epochs", "cooldown_counter"}) {
    const double v = state.scalars.at(key);
    ZAE_CHECK(v >= 0 && v == std::floor(v) && v < 9007199254740992.0, prefix(), "load_state_dict: ", key,
              " must be a non-negative integer, got ", v);
  }
}

void ReduceLROnPlateau::load_state_dict(const SchedulerState& state) {
  check_state(state);
  Scheduler::load_state_dict(state);  // checks again, then restores lrs and last_step
  best_ = state.scalars.at("best");
  num_bad_epochs_ = static_cast<int64_t>(state.scalars.at("num_bad_epochs"));
  cooldown_counter_ = static_cast<int64_t>(state.scalars.at("cooldown_counter"));
}

}  // namespace zae::sched
