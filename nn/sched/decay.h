// Multiplicative decay schedules, as torch.optim.lr_scheduler's (closed form in
// n = last_step(); the constructor writes n = 0, i.e. the base lrs):
//   StepLR:        lr = base * gamma^floor(n / step_size)
//   MultiStepLR:   lr = base * gamma^(number of milestones <= n)
//   ExponentialLR: lr = base * gamma^n
// None has a horizon (total_iters() is empty). gamma > 1 grows the lr, as in PyTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

class StepLR final : public Scheduler {
 public:
  /// step_size > 0; gamma finite and > 0.
  StepLR(std::shared_ptr<optim::Optimizer> optimizer, int64_t step_size, double gamma = 0.1);
  std::vector<double> lr_at(int64_t step) const override;
  int64_t step_size() const { return step_size_; }
  double gamma() const { return gamma_; }

 private:
  int64_t step_size_;
  double gamma_;
};

class MultiStepLR final : public Scheduler {
 public:
  /// milestones strictly increasing and >= 0 (PyTorch's repeated milestones, which
  /// multiply gamma in twice, are rejected as a likely mistake); gamma finite and > 0.
  MultiStepLR(std::shared_ptr<optim::Optimizer> optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  std::vector<double> lr_at(int64_t step) const override;
  const std::vector<int64_t>& milestones() const { return milestones_; }
  double gamma() const { return gamma_; }

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class ExponentialLR final : public Scheduler {
 public:
  /// gamma finite and > 0.
  ExponentialLR(std::shared_ptr<optim::Optimizer> optimizer, double gamma);
  std::vector<double> lr_at(int64_t step) const override;
  double gamma() const { return gamma_; }

 private:
  double gamma_;
};

}  // namespace zae::sched
