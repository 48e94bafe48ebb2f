#include "nn/sched/linear_lr.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

LinearLR::LinearLR(std::shared_ptr<optim::Optimizer> optimizer, const Options& options)
    : Scheduler("LinearLR", std::move(optimizer)), options_(options) {
  ZAE_CHECK(options.start_factor > 0.0 && options.start_factor <= 1.0, prefix(),
            "start_factor must be in (0, 1], got ", options.start_factor);
  ZAE_CHECK(options.end_factor >= 0.0 && options.end_factor <= 1.0, prefix(), "end_factor must be in [0, 1], got ",
            options.end_factor);
  ZAE_CHECK(options.total_iters > 0, prefix(), "total_iters must be > 0, got ", options.total_iters);
  initial_step();
}

std::vector<double> LinearLR::lr_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "lr_at: step must be >= 0, got ", step);
  const double t = static_cast<double>(options_.total_iters);
  const double n = static_cast<double>(std::min(step, options_.total_iters));
  const double factor = options_.start_factor + (options_.end_factor - options_.start_factor) * n / t;
  std::vector<double> lrs;
  lrs.reserve(base_lrs_.size());
  for (double base : base_lrs_) lrs.push_back(base * factor);
  return lrs;
}

}  // namespace zae::sched
