// WandBLogger: a native Weights & Biases client (no Python, no SDK) over W&B's HTTP
// protocol (io/loggers/wandb_api.h):
//   - the run is created (or resumed: the same run id) by GraphQL UpsertBucket with its
//     name, project, entity, display name, tags and config; the reply's historyLineCount is
//     where this session's history continues;
//   - every log_metrics is one history row {user keys..., _step, _runtime, _timestamp},
//     streamed to file_stream with contiguous line offsets (across requests and across a
//     resume), each request also carrying the full summary (wandb-summary.json);
//   - heartbeats ({}) while idle, and at finish the final {"complete": true, "exitcode": N}.
//
// Threading: the training thread only formats rows and enqueues them (BatchingWorker,
// io/loggers/batching_worker.h); every network call, the UpsertBucket included, runs on
// the worker thread, lazily, with the first batch: constructing the logger never touches
// the network, and no log_* call ever waits for it. A config logged after the run was
// created is sent by a second UpsertBucket. flush() asks the worker to send now and
// returns at once. finish() drains the queue (at most drain_timeout), then sends the final
// request (retried with backoff within drain_timeout).
//
// Failure handling: a failed request (network, 4xx, 5xx) is retried with exponential
// backoff (min_backoff..max_backoff); after max_attempts the logger warns once and from
// then on every row goes to the offline spool (io/loggers/wandb_spool.h:
// <dir>/offline-run-<run_id>/history.jsonl + run.json), continuing at the first line the
// server did not acknowledge, so `zae-wandb-sync <dir>` uploads exactly what is missing.
// A reply "stopped": true (the run was stopped from the UI) is honoured the same way:
// one warning, no more requests, rows spooled. Offline mode, and online mode without an
// API key (one warning), spool from the start; disabled mode does nothing at all.
//
// Invariants: log_* / flush never throw and never wait for the network; finish never
// throws and waits at most about 2 x drain_timeout + request_timeout (the drain, a request
// already in flight, the final request); finish runs once (later calls, and log_* after
// it, are ignored; the destructor finishes with success = true when nobody did); the API
// key never appears in a warning, an error or a spooled file.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "io/loggers/metric_logger.h"

namespace zae::io {

struct WandBOptions {
  std::string project{};   ///< "" -> WANDB_PROJECT, else "uncategorized"
  std::string entity{};    ///< "" -> WANDB_ENTITY, else the key's default entity (the server's choice)
  std::string run_id{};    ///< "" -> WANDB_RUN_ID, else 8 random [a-z0-9]; the same id resumes a run
  std::string name{};      ///< display name; "" -> WANDB_NAME, else the server's choice
  std::string mode{};      ///< "online" | "offline" | "disabled"; "" -> WANDB_MODE, else "online"
  std::string base_url{};  ///< "" -> WANDB_BASE_URL, else "https://api.wandb.ai"
  std::string api_key{};   ///< "" -> WANDB_API_KEY, else ~/.netrc's entry for the host (never printed)
  std::string dir{};       ///< the spool's parent; "" -> WANDB_DIR, else "./wandb"
  std::vector<std::string> tags{};
  std::chrono::milliseconds send_interval{std::chrono::seconds(15)};       ///< at most one request per interval
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(25)};  ///< while idle (W&B wants <= 30 s)
  std::chrono::milliseconds min_backoff{std::chrono::seconds(2)};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(60)};
  int max_attempts = 5;                                                    ///< per batch, then spool
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};     ///< per HTTP request
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(30)};       ///< finish(): sending what is queued
  size_t queue_capacity = 100000;                                          ///< rows queued before spooling the oldest
  size_t max_batch_rows = 10000;                                           ///< history rows per request
};

/// `options` with every empty field filled from the WANDB_* variables and the defaults,
/// checked: a zae::Error for an unknown mode, a base URL that is not http(s)://..., or a
/// run id that is not 1-64 characters of [A-Za-z0-9_.-].
WandBOptions resolve_wandb_options(WandBOptions options);
/// 8 random characters of [a-z0-9] (W&B's run id shape).
std::string generate_wandb_run_id();

class WandBLogger : public MetricLogger {
 public:
  /// Resolves the options (resolve_wandb_options); offline mode opens the spool (a
  /// zae::Error when it cannot be created). Never touches the network.
  explicit WandBLogger(WandBOptions options);
  ~WandBLogger() override;
  WandBLogger(const WandBLogger&) = delete;
  WandBLogger& operator=(const WandBLogger&) = delete;

  std::string name() const override { return "wandb"; }
  /// The run's config (an object; other JSON is wrapped as {"config": value}).
  void log_config(const json::Value& config) override;
  void log_metrics(const MetricValues& values, int64_t step) override;
  void log_summary(const MetricValues& values) override;
  void flush() override;
  void finish(bool success) override;

  /// The resolved options (api_key blanked).
  const WandBOptions& options() const { return options_; }
  /// "online", "offline" or "disabled": the mode asked for, after resolution.
  const std::string& mode() const { return options_.mode; }
  /// The spool directory (<dir>/offline-run-<run_id>), whether or not anything went there.
  std::string spool_dir() const;
  /// Whether rows go to the spool now (offline, no key, given up, or stopped by the server).
  bool spooling() const;

 private:
  struct Impl;
  WandBOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zae::io
