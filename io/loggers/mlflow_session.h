// The worker-thread side of MLflowLogger (io/loggers/mlflow_logger.h; internal): one run on
// one tracking server. It creates the experiment and run lazily, turns queued items into
// runs/log-batch and runs/update requests, and appends what cannot be delivered to the
// spool file (format in mlflow_logger.h).
// Invariants: send() and give_up() run on the worker thread only (never concurrently; the
// HTTP client is theirs); an item's seq enters `delivered_` once the request that carried
// it succeeded, so a batch that is retried or spooled after a partial success never
// repeats a request; run_id() / experiment_id() / spooled() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/http_client.h"
#include "io/loggers/mlflow_protocol.h"

namespace zae::io::mlflow {

/// One queued thing to send.
struct Item {
  enum class Kind : uint8_t { start, metric, param, tag, end };
  Kind kind = Kind::start;  ///< start: only makes sure the run exists
  uint64_t seq = 0;         ///< unique per logger, increasing
  std::string key, text;    ///< param/tag: key and value; end: text = the status
  double value = 0;         ///< metric
  int64_t step = 0;         ///< metric
  int64_t time_ms = 0;      ///< metric: timestamp; end: end_time
};

struct SessionConfig {
  std::string tracking_uri;  ///< http(s)://host[:port][/prefix], no trailing '/'
  std::string experiment_name, run_name;
  int64_t start_ms = 0;
  std::vector<KeyValue> run_tags;
  HttpHeaders headers;
  std::string spool_path;
  std::chrono::milliseconds request_timeout{30000};
};

class Session {
 public:
  explicit Session(SessionConfig config);

  /// Sends what `batch` holds that was not delivered yet; "" on success, else the error
  /// (the batch is then retried unchanged or handed to give_up).
  std::string send(const std::vector<Item>& batch);
  /// Spools the undelivered part of `batch` (the run's end is first tried once on its own).
  void give_up(const std::vector<Item>& batch, const std::string& why);

  std::string run_id() const;
  std::string experiment_id() const;
  /// Requests appended to the spool so far.
  size_t spooled() const { return spooled_.load(); }
  const SessionConfig& config() const { return c_; }

 private:
  std::string get_experiment(bool& missing);
  std::string ensure_run();
  std::string post(const std::string& endpoint, const std::string& body);
  struct Segment;
  std::string post_segment(const Segment& seg);
  std::string header_line() const;
  void write_spool(const std::vector<std::string>& lines);

  SessionConfig c_;
  std::string api_;  // <tracking_uri>/api/2.0/mlflow/
  std::unique_ptr<HttpClient> http_;
  mutable std::mutex ids_mu_;  // experiment_id_ / run_id_: written on the worker thread under it
  std::string experiment_id_, run_id_;
  std::unordered_set<uint64_t> delivered_;
  bool reported_ = false, spool_started_ = false, spool_broken_ = false;
  std::atomic<size_t> spooled_{0};
};

}  // namespace zae::io::mlflow
