// LinearLR, as torch.optim.lr_scheduler.LinearLR (closed form in n = last_step()):
//   lr = base * (start_factor + (end_factor - start_factor) * min(n, T) / T)
// The constructor writes base * start_factor; after T steps the lr is base * end_factor
// and stays there. total_iters() = T, the length of the ramp.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <optional>
#include <vector>

#include "nn/sched/scheduler.h"

namespace zae::sched {

class LinearLR final : public Scheduler {
 public:
  struct Options {
    double start_factor = 1.0 / 3.0;  ///< in (0, 1]
    double end_factor = 1.0;          ///< in [0, 1]
    int64_t total_iters = 5;          ///< > 0
  };
  LinearLR(std::shared_ptr<optim::Optimizer> optimizer, const Options& options);
  explicit LinearLR(std::shared_ptr<optim::Optimizer> optimizer) : LinearLR(std::move(optimizer), Options{}) {}

  std::vector<double> lr_at(int64_t step) const override;
  std::optional<int64_t> total_iters() const override { return options_.total_iters; }
  const Options& options() const { return options_; }

 private:
  Options options_;
};

}  // namespace zae::sched
