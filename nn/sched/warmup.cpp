#include "nn/sched/warmup.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

WarmUpScheduler::WarmUpScheduler(std::shared_ptr<optim::Optimizer> optimizer, int64_t total_iters, double eta_min)
    : Scheduler("WarmUpScheduler", std::move(optimizer)), total_iters_(total_iters), eta_min_(eta_min) {
  ZAE_CHECK(total_iters > 0, prefix(), "total_iters must be > 0, got ", total_iters);
  ZAE_CHECK(std::isfinite(eta_min) && eta_min >= 0.0, prefix(), "eta_min must be finite and >= 0, got ", eta_min);
  initial_step();
}

std::vector<double> WarmUpScheduler::lr_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "lr_at: step must be >= 0, got ", step);
  const double k = static_cast<double>(std::min(step + 1, total_iters_));
  const double t = static_cast<double>(total_iters_);
  std::vector<double> lrs;
  lrs.reserve(base_lrs_.size());
  for (double base : base_lrs_) lrs.push_back(eta_min_ + (base - eta_min_) * k / t);
  return lrs;
}

}  // namespace zae::sched
