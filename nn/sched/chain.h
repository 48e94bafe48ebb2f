// SchedulerChain: zae-engine's sequence of schedules on one optimizer. Scheduler i
// drives the chain's steps [S_i, S_i + T_i) with S_i = T_0 + ... + T_(i-1), at its own
// local step (chain step - S_i); total_iters() = sum of T_i. So the chain's lrs are the
// first scheduler's at its k = 1 .. T_0 (the constructor writes k = 1, as a scheduler
// on its own), then the second's at its k = 1 .. T_1, and so on; past the end the last
// scheduler decides (the zae-engine schedules hold their final lr, OneCycleLR fails).
// All schedulers share the first one's base lrs (PyTorch's initial_lr): each later
// scheduler is rebased onto them when the chain is built, because building it wrote
// into the optimizer. The chained schedulers are driven by the chain (their own
// last_step() and get_last_lr() follow the steps each one ran); step them only through it.
// Upstream (zae_engine/schedulers/core.py) steps the first scheduler once more in the
// chain's constructor, so each scheduler there runs at k = 2 .. T_i + 1 (a warm-up
// overshoots its base lr by base / T on its last step); that off-by-one is not copied.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

class SchedulerChain final : public Scheduler {
 public:
  /// One or more schedulers on the same optimizer, each with a total_iters() and none
  /// metric-driven, each used once.
  explicit SchedulerChain(std::vector<std::shared_ptr<Scheduler>> schedulers);

  std::vector<double> lr_at(int64_t step) const override;
  std::optional<int64_t> total_iters() const override { return starts_.back(); }
  const std::vector<std::shared_ptr<Scheduler>>& schedulers() const { return schedulers_; }
  /// The index of the scheduler that drives chain step `step`.
  size_t index_at(int64_t step) const;

  SchedulerState state_dict() const override;
  void load_state_dict(const SchedulerState& state) override;

 protected:
  void seek(int64_t step) override;
  void rebase(const std::vector<double>& base_lrs) override;
  void check_state(const SchedulerState& state) const override;

 private:
  static std::shared_ptr<optim::Optimizer> common_optimizer(const std::vector<std::shared_ptr<Scheduler>>& schedulers);

  std::vector<std::shared_ptr<Scheduler>> schedulers_;
  std::vector<int64_t> starts_;  // starts_[i] = S_i; starts_.back() = total
};

}  // namespace zae::sched
