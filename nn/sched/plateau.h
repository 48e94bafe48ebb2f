// ReduceLROnPlateau, as torch.optim.lr_scheduler.ReduceLROnPlateau: metric-driven, not
// a function of the step count. Each step(metric) compares the metric with the best so
// far (mode min: better when metric < best * (1 - threshold) [rel] or best - threshold
// [abs]; mode max: metric > best * (1 + threshold) or best + threshold); a worse or
// equal metric (NaN included, as in PyTorch) is a bad epoch. During cooldown bad epochs
// are not counted. More than `patience` bad epochs in a row multiply every group's
// current lr by factor (floored at min_lr, and skipped when the change would be at most
// eps), then start a cooldown of `cooldown` steps.
// The constructor writes nothing (the optimizer's lrs are the start, as in PyTorch);
// step() without a metric is an error; lr_at() is an error; total_iters() is empty.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

enum class PlateauMode { min, max };
enum class ThresholdMode { rel, abs };

class ReduceLROnPlateau final : public Scheduler {
 public:
  struct Options {
    PlateauMode mode = PlateauMode::min;
    double factor = 0.1;                         ///< in (0, 1)
    int64_t patience = 10;                       ///< >= 0
    double threshold = 1e-4;                     ///< finite, >= 0
    ThresholdMode threshold_mode = ThresholdMode::rel;
    int64_t cooldown = 0;                        ///< >= 0
    std::vector<double> min_lr = {0.0};          ///< one value for every group, or one per group; each >= 0
    double eps = 1e-8;                           ///< finite, >= 0
  };
  ReduceLROnPlateau(std::shared_ptr<optim::Optimizer> optimizer, const Options& options);
  explicit ReduceLROnPlateau(std::shared_ptr<optim::Optimizer> optimizer)
      : ReduceLROnPlateau(std::move(optimizer), Options{}) {}

  /// Error: this scheduler needs the monitored metric.
  void step() override;
  /// One epoch's (or evaluation's) value of the monitored metric.
  void step(double metric) override;
  bool needs_metric() const override { return true; }

  const Options& options() const { return options_; }
  /// The best metric so far (+inf in mode min / -inf in mode max before the first step).
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  /// Whether `metric` would count as an improvement on best().
  bool is_better(double metric) const;

  /// Adds "best", "num_bad_epochs" and "cooldown_counter" to the scalars.
  SchedulerState state_dict() const override;
  void load_state_dict(const SchedulerState& state) override;

 protected:
  void check_state(const SchedulerState& state) const override;

 private:
  Options options_;
  std::vector<double> min_lrs_;  // per group
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
};

}  // namespace zae::sched
