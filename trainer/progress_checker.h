// ProgressChecker: the trainer's step and epoch counters, both starting at 1
// (upstream zae-engine semantics). Checkpoints save and restore them.
#pragma once

#include <cstdint>

namespace zae {

class ProgressChecker {
 public:
  void update_step() { ++step_; }
  void update_epoch() { ++epoch_; }
  int64_t get_step() const { return step_; }
  int64_t get_epoch() const { return epoch_; }
  /// Resets both counters to 1.
  void init_state() {
    step_ = 1;
    epoch_ = 1;
  }
  /// Sets the epoch counter (resume); values below 1 are an error.
  void set_epoch(int64_t epoch);
  /// Sets the step counter (resume); values below 1 are an error.
  void set_step(int64_t step);

 private:
  int64_t step_ = 1;
  int64_t epoch_ = 1;
};

}  // namespace zae
