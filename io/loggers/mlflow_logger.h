// MLflowLogger: a MetricLogger that tracks a run on an MLflow tracking server through its
// REST API 2.0 (../shared/REFERENCE.md), over libcurl (io/http_client.h), with no Python.
//
//   io::MLflowLogger mlf({.tracking_uri = "http://127.0.0.1:5000", .experiment_name = "fashion",
//                         .run_name = "mlp-adamw", .tags = {{"team", "vision"}}});
//   mlf.log_config(config);                     // -> params "optimizer.lr", "model.hidden", ...
//   mlf.log_metrics({{"train/loss", 0.31}}, step);
//   mlf.finish(true);                           // -> runs/update FINISHED
//
// What goes where:
//   construction  validates the options (only http:// and https:// servers: a file store,
//                 "databricks" or any other scheme is a zae::Error naming the URI) and starts
//                 the background thread; it does NOT touch the network.
//   setup         on the background thread, at once: experiments/get-by-name, else
//                 experiments/create (a concurrent create that answers
//                 RESOURCE_ALREADY_EXISTS is followed by get-by-name again), then
//                 runs/create {experiment_id, start_time = construction time (ms), run_name,
//                 tags: the user's + mlflow.runName, mlflow.source.name (the program),
//                 mlflow.source.type LOCAL, mlflow.user}. A failed setup is retried with
//                 the batch that needed it.
//   log_config    params: nested keys joined with '.' (mlflow_protocol.h flatten_config);
//                 values over 6000 bytes are truncated with a note; params are write-once
//                 in MLflow, so logging a key again with a different value is skipped with
//                 one warning per key (the same value again is not resent).
//   log_metrics   metrics {key, value, timestamp = call time (ms), step}, queued and sent
//                 by the background thread in runs/log-batch requests at most every
//                 send_interval, split to MLflow's limits (1000 metrics, 100 params, 100
//                 tags, 1000 entities, 1 MB per request).
//   log_summary   metrics "summary/<key>" at the last logged step (MLflow shows a metric's
//                 latest value in its run table, so summaries stay sortable; the prefix keeps
//                 them out of the per-step histories; a later summary of a key wins because
//                 MLflow's "latest" is the entry with the largest step, then timestamp).
//   finish(ok)    queues runs/update {FINISHED or FAILED, end_time}, then drains: sends what
//                 is queued (within drain_timeout) and stops the thread. The destructor of
//                 a logger that was never finished ends the run as KILLED.
//
// Keys are made acceptable to MLflow (mlflow_protocol.h sanitize_key: characters outside
// [A-Za-z0-9_-. :/] become '_', at most 250 bytes), with one warning per changed key.
// NaN and infinite values are sent as protobuf JSON spells them ("NaN", "Infinity").
//
// Never blocks, never throws: log_* / flush only queue (a mutex hold); every network
// failure, 4xx and 5xx is retried with exponential backoff (min_backoff .. max_backoff,
// max_attempts), then the undeliverable requests are appended to the spool file with one
// warning, so nothing is lost and training goes on. A request that partly went through
// (one of several split requests) is never sent twice.
//
// Spool format (JSONL, <spool_dir>/<run_name or "run">-<start ms>-<pid>.jsonl, created only
// when something could not be delivered). The first line describes the run:
//   {"type":"run","tracking_uri":...,"experiment_name":...,"experiment_id":"1"|"",
//    "run_id":"..."|"","run_name":...,"start_time":ms,"tags":[{"key":..,"value":..}]}
// then one line per undelivered request, in order, with the exact body it would have sent:
//   {"type":"request","endpoint":"runs/log-batch"|"runs/update","body":{...},"error":"..."}
// A body whose run_id is "" was spooled before the run could be created: a replayer
// creates the run from the "run" line (experiments/get-by-name or create, runs/create) and
// substitutes its id; other bodies are POSTed to {tracking_uri}/api/2.0/mlflow/<endpoint>
// as they are.
//
// Authentication: MLFLOW_TRACKING_TOKEN (Bearer) or MLFLOW_TRACKING_USERNAME and
// MLFLOW_TRACKING_PASSWORD (Basic), as MLflow's own client; never printed.
// Thread safety: log_* / flush / finish may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/loggers/metric_logger.h"

namespace zae::io {

struct MLflowOptions {
  /// http(s)://host[:port][/prefix] of an MLflow tracking server; "" = MLFLOW_TRACKING_URI.
  std::string tracking_uri;
  /// "" = MLFLOW_EXPERIMENT_NAME, else "Default". Created when missing.
  std::string experiment_name;
  /// "" = the server picks a name.
  std::string run_name;
  /// Run tags, sent with runs/create.
  std::map<std::string, std::string> tags;
  /// At most one log-batch round per interval (flush() and finish() send at once).
  std::chrono::milliseconds send_interval{std::chrono::seconds(5)};
  /// Where undeliverable requests go (see the file comment); "" = ./mlruns-spool.
  std::string spool_dir;
  /// Total time limit of one HTTP request.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  /// Retry backoff: min_backoff, doubling up to max_backoff; after max_attempts tries a
  /// batch is spooled.
  std::chrono::milliseconds min_backoff{std::chrono::seconds(2)};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(60)};
  int max_attempts = 5;
  /// finish() sends what is queued for at most this long, then spools the rest.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(30)};
  /// Queued items (metrics, params) before the oldest are spooled unsent.
  size_t queue_capacity = 100000;
};

class MLflowLogger : public MetricLogger {
 public:
  /// Validates the options (see the file comment) and starts the background thread.
  explicit MLflowLogger(MLflowOptions options);
  /// Ends an unfinished run as KILLED (draining as finish does); never throws.
  ~MLflowLogger() override;
  MLflowLogger(const MLflowLogger&) = delete;
  MLflowLogger& operator=(const MLflowLogger&) = delete;

  std::string name() const override { return "mlflow"; }
  void log_config(const json::Value& config) override;
  void log_metrics(const MetricValues& values, int64_t step) override;
  void log_summary(const MetricValues& values) override;
  void flush() override;
  void finish(bool success) override;

  /// The options after defaults and environment variables were applied.
  const MLflowOptions& options() const;
  /// The run's id once runs/create succeeded, else "".
  std::string run_id() const;
  /// The experiment's id once known, else "".
  std::string experiment_id() const;
  /// The spool file (it exists only when something could not be delivered).
  const std::string& spool_path() const;
  /// Requests appended to the spool so far.
  size_t spooled_requests() const;

 private:
  struct State;
  void end_run(const std::string& status);
  std::unique_ptr<State> s_;
};

}  // namespace zae::io
