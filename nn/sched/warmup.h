// WarmUpScheduler: zae-engine's linear warm-up. With k = last_step() + 1 (the count
// after the constructor's initial step, as upstream's PyTorch _step_count):
//   lr = eta_min + (base - eta_min) * min(k, T) / T
// so the constructor writes eta_min + (base - eta_min) / T, the T-th lr (after T - 1
// steps) is exactly base, and later steps hold base. Upstream keeps growing past T
// (k / T > 1 overshoots base); that defect is not copied.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

class WarmUpScheduler final : public Scheduler {
 public:
  /// total_iters > 0; eta_min finite and >= 0 (the lr the ramp starts from at k = 0).
  WarmUpScheduler(std::shared_ptr<optim::Optimizer> optimizer, int64_t total_iters, double eta_min = 0.0);

  std::vector<double> lr_at(int64_t step) const override;
  std::optional<int64_t> total_iters() const override { return total_iters_; }
  double eta_min() const { return eta_min_; }

 private:
  int64_t total_iters_;
  double eta_min_;
};

}  // namespace zae::sched
