// LoggingDriver: what the Trainer tells its metric loggers, and when (the logger add-ons
// in trainer/logger_addons.h are thin wrappers around it).
//
// What is logged (the trainer's global step is the x axis of everything):
//   at the first run():  the config: model (type, parameters), optimizer (name, options of
//                        group 0), scheduler, trainer options, world size
//   after each train batch: train/<key> for every one-element value the step returned
//                        (rank-averaged when data parallel), lr, samples_per_sec
//   after each epoch:    train/<key>_epoch and test/<key>_epoch for the epoch metrics
//                        (metric_on_epoch_end's included), epoch
//   at the end of run(): the summary: best_loss, best_epoch, the last epoch's metrics
//   when the trainer goes away (or the process exits from a signal): finish(success)
// Invariants: only the main process (rank 0) creates loggers and logs; the driver never
// throws from the trainer's hooks except when a logger's construction fails at the first
// run (bad options); a logger is finished exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "io/batch.h"
#include "io/json.h"
#include "io/loggers/metric_logger.h"

namespace zae {

class Trainer;

namespace detail {

/// The run's configuration as a JSON object (see the file comment).
io::json::Value trainer_config(const Trainer& trainer);

class LoggingDriver {
 public:
  using Factory = std::function<std::shared_ptr<io::MetricLogger>()>;
  /// `make` builds the logger on the main process at the first run (not on other ranks).
  explicit LoggingDriver(Factory make);
  /// Finishes the logger (success unless fail() was called); never throws.
  ~LoggingDriver();
  LoggingDriver(const LoggingDriver&) = delete;
  LoggingDriver& operator=(const LoggingDriver&) = delete;

  void begin_run(const Trainer& trainer);
  void before_batch(const Batch& batch);
  void after_step(const Trainer& trainer);
  void after_epoch(const Trainer& trainer, int64_t epoch);
  void end_run(const Trainer& trainer);
  /// Finishes now with success = false (a failed run); later calls do nothing.
  void finish(bool success);

  /// The logger (null before the first run and on ranks other than 0).
  io::MetricLogger* logger() const { return logger_.get(); }

 private:
  using Clock = std::chrono::steady_clock;
  Factory make_;
  std::shared_ptr<io::MetricLogger> logger_;
  bool config_logged_ = false;
  bool finished_ = false;
  int64_t batch_samples_ = 0;
  Clock::time_point batch_start_{};
};

}  // namespace detail
}  // namespace zae
