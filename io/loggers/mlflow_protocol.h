// The wire side of the MLflow tracking client (io/loggers/mlflow_logger.h): request
// bodies of MLflow's REST API 2.0 (experiments/create, runs/create, runs/log-batch,
// runs/update), the server's per-request limits, names made acceptable to the server, and
// the config flattening that turns a JSON config into params. Pure functions, no I/O.
//
// Invariants: every body is one compact JSON object; numbers are the shortest text that
// reads back to the same double (NaN and the infinities as protobuf JSON spells them:
// "NaN", "Infinity", "-Infinity"); split_batch keeps the items' order and never exceeds
// any of MLflow's batch limits; sanitize_key returns a name that MLflow's validation
// accepts (its character set, no path tricks, at most kMaxKeyLength bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace zae::io::mlflow {

/// MLflow's limits (mlflow/utils/validation.py).
inline constexpr size_t kMaxKeyLength = 250;           ///< metric, param and tag keys
inline constexpr size_t kMaxParamValueLength = 6000;   ///< longer values are truncated
inline constexpr size_t kMaxTagValueLength = 8000;
inline constexpr size_t kMaxMetricsPerBatch = 1000;
inline constexpr size_t kMaxParamsPerBatch = 100;
inline constexpr size_t kMaxTagsPerBatch = 100;
inline constexpr size_t kMaxEntitiesPerBatch = 1000;   ///< metrics + params + tags in one request
inline constexpr size_t kMaxBatchBytes = 1000000;      ///< request body size

struct MetricPoint {
  std::string key;
  double value = 0;
  int64_t timestamp_ms = 0;
  int64_t step = 0;
};

struct KeyValue {
  std::string key, value;
};

/// The contents of one or more runs/log-batch requests.
struct LogBatch {
  std::vector<MetricPoint> metrics;
  std::vector<KeyValue> params, tags;
  bool empty() const { return metrics.empty() && params.empty() && tags.empty(); }
  size_t size() const { return metrics.size() + params.size() + tags.size(); }
};

/// Splits `all` into requests within MLflow's limits (per kind, in total, and in bytes),
/// keeping the order of each kind.
std::vector<LogBatch> split_batch(const LogBatch& all);

/// A double as a JSON token: a number, or "NaN" / "Infinity" / "-Infinity" (quoted).
std::string json_double(double v);

std::string create_experiment_body(const std::string& name);
std::string create_run_body(const std::string& experiment_id, int64_t start_time_ms, const std::string& run_name,
                            const std::vector<KeyValue>& tags);
std::string log_batch_body(const std::string& run_id, const LogBatch& batch);
std::string update_run_body(const std::string& run_id, const std::string& status, int64_t end_time_ms);

/// MLflow's error reply {"error_code": "...", "message": "..."}: the code, or "" when the
/// body is not such a reply.
std::string error_code(std::string_view body);

/// A key MLflow accepts: characters outside [A-Za-z0-9_-. :/] become '_', empty path
/// segments and "." segments are dropped, ".." segments become "__", a leading ".." is
/// escaped, an empty key becomes "_", and the result is cut to kMaxKeyLength bytes.
std::string sanitize_key(std::string_view key);

/// `value` cut to at most `limit` bytes (never inside a UTF-8 sequence), ending with
/// "...[truncated N bytes]" when cut.
std::string truncate_value(std::string_view value, size_t limit);

/// Flattens a JSON config into params: nested objects join their keys with '.'
/// ("optimizer.lr"); strings are their text, numbers their literal, booleans true/false,
/// null "null", arrays their compact JSON. A non-object config is one param "config".
std::vector<KeyValue> flatten_config(const json::Value& config);

}  // namespace zae::io::mlflow
