// Scheduler: sets the learning rate of every parameter group of one optimizer as a
// function of the step count, as torch.optim.lr_scheduler does.
// Invariants:
// - base_lrs() are the groups' lrs when the scheduler was built (PyTorch's initial_lr),
//   one per group; the optimizer must keep that number of groups (checked on every write).
// - The constructor performs the initial step: last_step() == 0 and the optimizer holds
//   the schedule's lrs at step 0. Each step() advances last_step() by one and writes the
//   lrs at the new step (ReduceLROnPlateau's constructor writes nothing). last_step()
//   is PyTorch's last_epoch.
// - k-indexed schedules are closed-form in last_step() (lr_at), so a resumed scheduler
//   (state_dict / load_state_dict) continues bit-identically, and a hand-written lr
//   change between steps is replaced at the next step (PyTorch's chainable form would
//   scale it instead). ReduceLROnPlateau is the exception: it is metric-driven
//   (needs_metric(), step(metric)) and scales the optimizer's current lrs.
// - Bad arguments are zae::Error naming the scheduler and the values; nothing else throws.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/optim/optimizer.h"

namespace zae::sched {

/// What a scheduler needs to continue exactly where it was: its progress, not its
/// configuration (a resumed scheduler is built with the same arguments, then loaded).
struct SchedulerState {
  std::string name;                        ///< the scheduler's name(); checked on load when non-empty
  int64_t last_step = 0;                   ///< step() calls since construction
  std::vector<double> base_lrs;            ///< one per group
  std::vector<double> last_lrs;            ///< one per group: the lrs written by the last step
  std::map<std::string, double> scalars;   ///< scheduler-specific counters (ReduceLROnPlateau's best, ...)
  std::vector<SchedulerState> children;    ///< SchedulerChain: the chained schedulers' states, in order

  /// A flat form for checkpoints: {"last_step": [n], "base_lrs": [...], "last_lrs": [...],
  /// "scalars.<key>": [v], "children.<i>.<...>": ...}; every value is exact in float64
  /// (last_step below 2^53). The name is not part of it.
  std::map<std::string, std::vector<double>> flatten() const;
  /// The inverse of flatten() (name left empty); malformed input is a clear error.
  static SchedulerState unflatten(const std::map<std::string, std::vector<double>>& flat);

  bool operator==(const SchedulerState&) const = default;
};

class SchedulerChain;

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// "WarmUpScheduler", "StepLR", ...
  const std::string& name() const { return name_; }
  const std::shared_ptr<optim::Optimizer>& optimizer() const { return optimizer_; }

  /// Advances one step and writes every group's lr (k-indexed schedules).
  virtual void step();
  /// Advances one step driven by a monitored metric (schedulers whose needs_metric() is
  /// true); the others reject it.
  virtual void step(double metric);
  /// True for metric-driven schedulers (ReduceLROnPlateau): call step(metric), not step().
  virtual bool needs_metric() const { return false; }

  /// The lr of every group after `step` step() calls, without changing anything;
  /// an error for schedulers that are not a function of the step (ReduceLROnPlateau).
  virtual std::vector<double> lr_at(int64_t step) const;
  /// The number of optimizer steps the schedule is laid out for, when it has such a
  /// horizon (WarmUp, CosineAnnealing, LinearLR, OneCycleLR, SchedulerChain): its lrs at
  /// last_step() = 0 .. total_iters()-1 drive those steps. Past it the zae-engine
  /// schedulers and LinearLR hold their final lr, and OneCycleLR allows one more step()
  /// (PyTorch's) and then fails.
  virtual std::optional<int64_t> total_iters() const { return std::nullopt; }

  /// The lrs written by the last step (or the constructor), one per group.
  const std::vector<double>& get_last_lr() const { return last_lrs_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// step() calls since construction (PyTorch's last_epoch).
  int64_t last_step() const { return last_step_; }

  virtual SchedulerState state_dict() const;
  /// Restores the progress saved by state_dict() of a scheduler built with the same
  /// arguments, and writes the restored lrs (and any other option the schedule drives)
  /// into the optimizer, so the order of optimizer and scheduler loads does not matter.
  /// A mismatch (name, group count, children) is a clear error and changes nothing.
  virtual void load_state_dict(const SchedulerState& state);

 protected:
  /// Records the optimizer's current lrs as base_lrs(); writes nothing.
  Scheduler(std::string name, std::shared_ptr<optim::Optimizer> optimizer);

  /// Derived constructors call this last: moves to step 0 (PyTorch's initial step).
  void initial_step() { seek(0); }
  /// Moves to `step`: last_step() = step and the optimizer gets lr_at(step) (and, for
  /// OneCycleLR, the cycled momentum).
  virtual void seek(int64_t step);
  /// Replaces the base lrs (SchedulerChain gives all its schedulers the first one's);
  /// OneCycleLR, whose lrs come from max_lr, ignores it.
  virtual void rebase(const std::vector<double>& base_lrs);
  /// Writes one lr per group into the optimizer and records them as get_last_lr().
  void write_lrs(std::vector<double> lrs);
  /// Throws unless `state` fits this scheduler, so that load_state_dict changes nothing
  /// on a mismatch. The default accepts no scalars and no children; overrides check
  /// their own parts and call check_common.
  virtual void check_state(const SchedulerState& state) const;
  /// The parts every state has: name, last_step >= 0, one finite lr >= 0 per group.
  void check_common(const SchedulerState& state) const;
  /// The start of every error message: "<name>: ".
  std::string prefix() const { return name_ + ": "; }

  std::vector<double> base_lrs_;
  std::vector<double> last_lrs_;
  int64_t last_step_ = 0;

 private:
  friend class SchedulerChain;
  std::string name_;
  std::shared_ptr<optim::Optimizer> optimizer_;
};

}  // namespace zae::sched
