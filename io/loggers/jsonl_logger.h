// JsonlLogger: metrics as JSON Lines, one object per line, for jq, pandas
// (read_json(lines=True)) and `tail -f`:
//   {"config":{...}}                                  log_config (the first line when called first)
//   {"step":12,"wall_time":1767225600.25,"train/loss":0.5,"lr":0.001}    log_metrics
//   {"summary":{"best/loss":0.25}}                    log_summary (later lines win per key)
//   {"finished":true,"success":true}                  finish
// wall_time is Unix time in seconds (as TensorBoard's wall_time). Metric keys follow in
// the map's (sorted) order.
// Invariants: numbers are exact (the shortest literal that reads back to the same double;
// steps as integers); NaN and the infinities are the strings "nan", "inf", "-inf", as in
// io/state_json.h. Each line is written whole by one write(2) with its '\n' and reaches the
// kernel before the call returns (no user-space buffer), so a reader that tails the file
// sees only complete lines. A path that cannot be opened (parent directories are created)
// is a zae::Error at construction; a later write failure is one warning on stderr, never
// an exception. Metric keys "step" and "wall_time" are reserved (a zae::Error, a
// programming error). Safe to call from several threads. After finish() (or when the
// logger is destroyed without it: no "finished" line then) every call is ignored.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "io/loggers/metric_logger.h"

namespace zae::io {

class AppendOnlyFile;

struct JsonlLoggerOptions {
  std::string path;     ///< the .jsonl file; missing parent directories are created
  bool append = false;  ///< continue an existing file instead of replacing it
};

class JsonlLogger : public MetricLogger {
 public:
  /// Opens (creates, truncates unless `append`) the file; a zae::Error naming the path
  /// when it cannot be opened. In append mode a file whose last line was cut off (a
  /// crash) gets a '\n' first, so the torn line stays on its own.
  explicit JsonlLogger(JsonlLoggerOptions options);
  ~JsonlLogger() override;

  std::string name() const override { return "jsonl"; }
  /// {"config": config}
  void log_config(const json::Value& config) override;
  /// {"step": step, "wall_time": now, "<key>": value, ...}
  void log_metrics(const MetricValues& values, int64_t step) override;
  /// {"summary": {"<key>": value, ...}}
  void log_summary(const MetricValues& values) override;
  /// Nothing is buffered in the program (every line went to the kernel already).
  void flush() override;
  /// {"finished": true, "success": success}, then fsync and close. Later calls are ignored.
  void finish(bool success) override;

  const std::string& path() const { return options_.path; }

 private:
  void write_line(std::string line);

  JsonlLoggerOptions options_;
  std::mutex mutex_;
  std::unique_ptr<AppendOnlyFile> file_;
  bool needs_newline_ = false;  // append mode: the existing file ends mid-line
  bool finished_ = false;
};

}  // namespace zae::io
