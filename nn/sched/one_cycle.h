// OneCycleLR, as torch.optim.lr_scheduler.OneCycleLR (PyTorch 1.13 / 2.x): the lr rises
// from initial = max_lr / div_factor to max_lr over the first pct_start of total_steps,
// then falls to min = initial / final_div_factor (three_phase: back to initial over a
// second phase of the same length, then to min). With n = last_step(), phases end at
//   two-phase:   pct_start * T - 1,  T - 1
//   three-phase: pct_start * T - 1,  2 * pct_start * T - 2,  T - 1
// and inside a phase [s, e] the value is anneal(start, end, (n - s) / (e - s)), with
// cos: end + (start - end) / 2 * (1 + cos(pi * pct)), linear: start + (end - start) * pct.
// As in PyTorch, n may reach T (the step() after the last optimizer step) and a step
// beyond is an error that changes nothing; at n = T PyTorch extrapolates the last phase
// (linear annealing then writes a negative lr), here the final values hold (pct = 1).
// base_lrs() are the initial lrs; the optimizer's own lrs are not used. With
// cycle_momentum the optimizer's "beta1" (Adam family) or else "momentum" follows the
// inverse cycle between max_momentum and base_momentum (PyTorch's rule); an optimizer
// with neither key is an error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

enum class AnnealStrategy { cos, linear };

class OneCycleLR final : public Scheduler {
 public:
  struct Options {
    std::vector<double> max_lr;   ///< one value for every group, or one per group; each > 0
    int64_t total_steps = 0;      ///< > 0; or 0 to use epochs * steps_per_epoch
    int64_t epochs = 0;
    int64_t steps_per_epoch = 0;
    double pct_start = 0.3;       ///< in [0, 1]
    AnnealStrategy anneal_strategy = AnnealStrategy::cos;
    bool cycle_momentum = true;
    double base_momentum = 0.85;  ///< in [0, 1)
    double max_momentum = 0.95;   ///< in [0, 1)
    double div_factor = 25.0;     ///< > 0
    double final_div_factor = 1e4;  ///< > 0
    bool three_phase = false;
  };
  OneCycleLR(std::shared_ptr<optim::Optimizer> optimizer, const Options& options);

  std::vector<double> lr_at(int64_t step) const override;
  /// The momentum (or beta1) of every group at `step` (cycle_momentum only).
  std::vector<double> momentum_at(int64_t step) const;
  std::optional<int64_t> total_iters() const override { return total_steps_; }
  const Options& options() const { return options_; }
  /// "momentum" or "beta1" (empty without cycle_momentum).
  const std::string& momentum_key() const { return momentum_key_; }

  void load_state_dict(const SchedulerState& state) override;

 protected:
  void seek(int64_t step) override;
  void rebase(const std::vector<double>& base_lrs) override;
  void check_state(const SchedulerState& state) const override;

 private:
  struct Phase {
    double end_step;
    int start_lr, end_lr;              // 0 initial, 1 max, 2 min
    bool start_momentum_max, end_momentum_max;
  };
  /// The phase that `step` falls in and the fraction of it done; error past total_steps.
  std::pair<const Phase*, double> locate(int64_t step) const;
  double anneal(double start, double end, double pct) const;
  double lr_value(size_t group, int which) const;

  Options options_;
  int64_t total_steps_ = 0;
  std::vector<double> max_lrs_, min_lrs_;  // per group; base_lrs_ holds the initial lrs
  std::vector<Phase> phases_;
  std::string momentum_key_;
};

}  // namespace zae::sched
