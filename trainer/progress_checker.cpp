#include "trainer/progress_checker.h"

#include "engine/error.h"

namespace zae {

void ProgressChecker::set_epoch(int64_t epoch) {
  ZAE_CHECK(epoch >= 1, "ProgressChecker::set_epoch: epochs count from 1, got ", epoch);
  epoch_ = epoch;
}

void ProgressChecker::set_step(int64_t step) {
  ZAE_CHECK(step >= 1, "ProgressChecker::set_step: steps count from 1, got ", step);
  step_ = step;
}

}  // namespace zae
