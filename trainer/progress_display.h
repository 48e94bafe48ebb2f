// ProgressDisplay: what the Trainer shows while it runs. On a terminal (stderr is
// a tty and log_bar is on): an epoch bar and a batch bar, redrawn in place at most
// ten times a second, with ETA, batches/s, samples/s, running means and the learning
// rate. Otherwise: nothing per batch. Epoch summaries always go to stdout, one line
// each. Invariant: drawing never throws and never touches tensors.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace zae {

class ProgressDisplay {
 public:
  /// `enabled`: the trainer's log_bar; bars are drawn only if stderr is also a terminal.
  /// `silent`: nothing at all is shown, summaries included (data parallel ranks other than 0).
  explicit ProgressDisplay(bool enabled, bool silent = false);
  ~ProgressDisplay();

  bool interactive() const { return interactive_; }
  void begin_run(int64_t first_epoch, int64_t last_epoch);
  void begin_epoch(int64_t epoch, const std::string& phase, int64_t num_batches);
  /// After batch `done` (1-based) of the epoch; `means` are the running means of the logged values.
  void update(int64_t done, int64_t samples, const std::map<std::string, double>& means, double lr);
  /// Clears the bars and prints `summary` on its own line (stdout).
  void end_epoch(const std::string& summary);
  void end_run();

 private:
  using Clock = std::chrono::steady_clock;
  void draw(bool force);
  void clear_bars();

  bool interactive_ = false;
  bool silent_ = false;
  bool drawn_ = false;
  int64_t first_epoch_ = 1, last_epoch_ = 1, epoch_ = 1;
  std::string phase_;
  int64_t num_batches_ = 0, done_ = 0, samples_ = 0;
  std::map<std::string, double> means_;
  double lr_ = 0;
  Clock::time_point run_start_, epoch_start_, last_draw_;
};

/// "mm:ss" or "h:mm:ss".
std::string format_duration(double seconds);

}  // namespace zae
