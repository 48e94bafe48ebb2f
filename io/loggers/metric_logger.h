// MetricLogger: where training metrics go (W&B, MLflow, TensorBoard, CSV, JSONL). The
// Trainer's logger add-ons (trainer/logger_addons.h) drive one or several loggers at
// once, each with its own options.
//
// Call order: log_config once at start (optional), then log_metrics any number of times
// with non-decreasing steps, log_summary any time (the latest wins per key), flush any
// time, finish exactly once (later calls are ignored). Keys are slash-separated names
// ("train/loss", "test/accuracy_epoch", "lr").
// Invariants: loggers never throw from log_metrics / log_summary / flush / finish for
// trouble outside the program (network down, server errors, disk full): they warn once on
// stderr and keep what they can (web loggers spool to disk); they throw zae::Error only for
// programming errors and bad options at construction (an unwritable path, a malformed
// URL). A logger never prints secrets (API keys).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "io/json.h"

namespace zae::io {

/// Scalars by key.
using MetricValues = std::map<std::string, double>;

class MetricLogger {
 public:
  virtual ~MetricLogger() = default;
  /// "wandb", "mlflow", "tensorboard", "csv", "jsonl".
  virtual std::string name() const = 0;
  /// The run's configuration (a JSON object: model size, optimizer options, ...).
  virtual void log_config(const json::Value& config) = 0;
  /// Scalars at a step (the trainer's global step).
  virtual void log_metrics(const MetricValues& values, int64_t step) = 0;
  /// Final or best values (W&B summary, MLflow tags/metrics, ...).
  virtual void log_summary(const MetricValues& values) = 0;
  /// Pushes what is buffered (files flushed, requests sent where the network allows).
  virtual void flush() = 0;
  /// Ends the run: success = exit code 0 / FINISHED, else a failure code / FAILED.
  virtual void finish(bool success) = 0;
};

}  // namespace zae::io
