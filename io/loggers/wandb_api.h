// WandBApi: the two endpoints of Weights & Biases' HTTP protocol that a run needs, shared
// by WandBLogger (io/loggers/wandb_logger.h) and zae-wandb-sync (apps/wandb_sync/):
//   POST {base}/graphql                                    mutation UpsertBucket (create or
//        resume a run; the reply names the final entity/project and historyLineCount)
//   POST {base}/files/{entity}/{project}/{run}/file_stream  history lines at an offset, the
//        summary, heartbeats ({}), the final {"complete": true, "exitcode": N}
// with `Authorization: Basic base64("api:" + key)`.
// Variables as the official client sends them: `name` is the run id, `displayName` the
// human-readable name, `id` the server's storage id (only once known: a later upsert of
// the same run, e.g. to add the config); `config` is a JSON string with every key wrapped
// as {"value": v}.
// Invariants: never throws for network or server trouble (the result carries an error
// text); error texts never contain the key (the Authorization header is never printed);
// numbers are written as the shortest text that reads back to the same double, NaN and
// the infinities as NaN / Infinity / -Infinity (what the official client writes).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/http_client.h"
#include "io/json.h"
#include "io/loggers/metric_logger.h"

namespace zae::io {

/// What the server said about a run (upsertBucket.bucket).
struct WandBRunInfo {
  std::string storage_id;          ///< bucket.id (for later upserts of the same run)
  std::string run_id;              ///< bucket.name
  std::string project, entity;     ///< final names (the server fills a default entity)
  int64_t history_line_count = 0;  ///< history lines the server holds: the next offset
};

/// The variables of one UpsertBucket call.
struct WandBUpsert {
  std::string storage_id;          ///< "" on the first call (sent as null)
  std::string run_id;              ///< -> name
  std::string project;             ///< "" -> null
  std::string entity;              ///< "" -> null (the key's default entity)
  std::string display_name;        ///< "" -> null
  const json::Value* config = nullptr;  ///< an object (plain values) or nullptr (not sent)
  std::vector<std::string> tags;   ///< empty -> not sent
};

/// The outcome of a file_stream request.
struct WandBStreamResult {
  std::string error;     ///< "" when the server accepted the request
  bool stopped = false;  ///< the reply said "stopped": true (the run was stopped in the UI)
  bool ok() const { return error.empty(); }
};

class WandBApi {
 public:
  /// `base_url` without a trailing slash needed ("https://api.wandb.ai"); `timeout` per request.
  WandBApi(std::string base_url, std::string api_key, std::chrono::milliseconds timeout);

  /// Creates or updates the run; "" and `out` filled on success, else an error text.
  std::string upsert_run(const WandBUpsert& run, WandBRunInfo& out);
  /// POSTs `body` (see file_stream_body) to the run's file_stream endpoint.
  WandBStreamResult file_stream(const std::string& entity, const std::string& project, const std::string& run_id,
                                const std::string& body);
  const std::string& base_url() const { return base_url_; }
  /// The total time one request may take from now on.
  void set_timeout(std::chrono::milliseconds timeout) { http_.set_timeout(timeout); }

 private:
  std::string base_url_;
  HttpHeaders headers_;
  HttpClient http_;
};

/// The API key for `base_url`: WANDB_API_KEY, else the password of the ~/.netrc entry
/// (or $NETRC's) for its host, as `wandb login` writes it; "" when there is none.
std::string wandb_api_key_from_environment(const std::string& base_url);

/// A double as W&B's JSON: shortest round-trip text; NaN, Infinity, -Infinity.
std::string wandb_number(double v);
/// One history row: the user's keys (sorted), then _step, _runtime and _timestamp.
/// Keys named _step/_runtime/_timestamp by the user are left out (the row's own win).
std::string wandb_history_line(const MetricValues& values, int64_t step, double runtime_s, double timestamp_s);
/// The summary object {"key": v, ...} (one line, keys sorted).
std::string wandb_summary_json(const MetricValues& summary);
/// The config as UpsertBucket wants it (before quoting): {"key": {"value": v}, ...}.
std::string wandb_config_json(const json::Value& config);
/// A file_stream body: history `lines` at `offset` (left out when empty), the summary
/// (left out when nullptr), and {"complete": true, "exitcode": N} when `exitcode` is set.
/// With nothing at all it is "{}" (a heartbeat).
std::string wandb_file_stream_body(int64_t offset, const std::vector<std::string>& lines, const std::string* summary,
                                   std::optional<int> exitcode);

}  // namespace zae::io
