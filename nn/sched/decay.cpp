#include "nn/sched/decay.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

namespace {

void check_gamma(const std::string& prefix, double gamma) {
  ZAE_CHECK(std::isfinite(gamma) && gamma > 0.0, prefix, "gamma must be finite and > 0, got ", gamma);
}

std::vector<double> scaled(const std::vector<double>& base_lrs, double factor) {
  std::vector<double> lrs;
  lrs.reserve(base_lrs.size());
  for (double base : base_lrs) lrs.push_back(base * factor);
  return lrs;
}

}  // namespace

StepLR::StepLR(std::shared_ptr<optim::Optimizer> optimizer, int64_t step_size, double gamma)
    : Scheduler("StepLR", std::move(optimizer)), step_size_(step_size), gamma_(gamma) {
  ZAE_CHECK(step_size > 0, prefix(), "step_size must be > 0, got ", step_size);
  check_gamma(prefix(), gamma);
  initial_step();
}

std::vector<double> StepLR::lr_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "lr_at: step must be >= 0, got ", step);
  return scaled(base_lrs_, std::pow(gamma_, static_cast<double>(step / step_size_)));
}

MultiStepLR::MultiStepLR(std::shared_ptr<optim::Optimizer> optimizer, std::vector<int64_t> milestones, double gamma)
    : Scheduler("MultiStepLR", std::move(optimizer)), milestones_(std::move(milestones)), gamma_(gamma) {
  for (size_t i = 0; i < milestones_.size(); ++i) {
    ZAE_CHECK(milestones_[i] >= 0, prefix(), "milestones must be >= 0, got ", milestones_);
    ZAE_CHECK(i == 0 || milestones_[i] > milestones_[i - 1], prefix(), "milestones must be strictly increasing, got ",
              milestones_);
  }
  check_gamma(prefix(), gamma);
  initial_step();
}

std::vector<double> MultiStepLR::lr_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "lr_at: step must be >= 0, got ", step);
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  return scaled(base_lrs_, std::pow(gamma_, static_cast<double>(passed)));
}

ExponentialLR::ExponentialLR(std::shared_ptr<optim::Optimizer> optimizer, double gamma)
    : Scheduler("ExponentialLR", std::move(optimizer)), gamma_(gamma) {
  check_gamma(prefix(), gamma);
  initial_step();
}

std::vector<double> ExponentialLR::lr_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "lr_at: step must be >= 0, got ", step);
  return scaled(base_lrs_, std::pow(gamma_, static_cast<double>(step)));
}

}  // namespace zae::sched
