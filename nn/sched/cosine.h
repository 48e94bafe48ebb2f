// CosineAnnealingScheduler: zae-engine's cosine decay. With k = last_step() + 1 (the
// count after the constructor's initial step, as upstream's PyTorch _step_count):
//   lr = eta_min + (base - eta_min) * 0.5 * (1 + cos(pi * min(k, T) / T))
// so the constructor writes the k = 1 value (just below base), the T-th lr (after
// T - 1 steps) is exactly eta_min, and later steps hold eta_min. Upstream's cosine
// is periodic past T (the lr climbs back to base); that defect is not copied.
// Unlike torch's CosineAnnealingLR (which starts at base, k = 0), this is upstream's
// formula, evaluated in closed form.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

class CosineAnnealingScheduler final : public Scheduler {
 public:
  /// total_iters > 0; eta_min finite and >= 0 (the lr reached at k = T).
  CosineAnnealingScheduler(std::shared_ptr<optim::Optimizer> optimizer, int64_t total_iters, double eta_min = 0.0);

  std::vector<double> lr_at(int64_t step) const override;
  std::optional<int64_t> total_iters() const override { return total_iters_; }
  double eta_min() const { return eta_min_; }

 private:
  int64_t total_iters_;
  double eta_min_;
};

}  // namespace zae::sched
