// CsvLogger: metrics as one wide CSV table, for spreadsheets and pandas.read_csv:
//   step,wall_time,lr,train/loss,train/loss_epoch
//   1,1767225600.25,0.001,0.5,
//   2,1767225600.5,0.001,0.25,
//   2,1767225600.5,,,0.375
// Columns are step, wall_time (Unix seconds), then the metric keys in the order they were
// first logged (within one call, in the map's sorted order). One row per log_metrics call;
// a key a row does not have is an empty cell. log_config writes the sidecar
// <path minus .csv>.config.json and log_summary <path minus .csv>.summary.json (the
// summary so far, the latest value per key), both indented JSON, replaced atomically.
//
// When a row brings a key the header lacks, the whole file is rewritten atomically
// (io/atomic_file.h: temporary file, fsync, rename) with the extended header, the earlier
// rows padded with empty cells and the new row, and appending continues on the new file
// (PyTorch Lightning's CSVLogger does the same). A reader never sees a half-rewritten file;
// `tail -F` follows the file across such a rewrite (it notices the rename and prints the
// new file from its start), `tail -f` does not (it stays on the replaced file, which gets
// nothing more). New keys usually appear only in the first epoch.
//
// Invariants: numbers are exact (steps as integers; doubles as the shortest literal that
// reads back to the same bits, std::to_chars); NaN and the infinities are nan, inf, -inf.
// Headers and cells are quoted as RFC 4180 says when they hold ',', '"', CR or LF (a '"'
// doubled); lines end with "\n". Every row is written whole by one write(2) with no
// user-space buffer, so it reaches the kernel before the call returns and a tailing reader
// sees only complete rows. A path that cannot be opened (parent directories are created)
// is a zae::Error at construction; later write failures are one warning on stderr each for
// the table and for the sidecars, never an exception. Metric keys "step" and "wall_time"
// are reserved (a zae::Error: a programming error). Safe to call from several threads;
// after finish() every call is ignored.
//
// Append mode continues an existing file: its header (which must start with step,wall_time:
// a zae::Error otherwise, naming what it found) gives the columns, and keys it lacks are
// added by the rewrite above, so a run resumed with more metrics than the file has keeps
// every old row and gains the new columns. A last row cut off by a crash is removed (with
// a warning). The summary sidecar's values are kept and updated.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/loggers/metric_logger.h"

namespace zae::io {

class AppendOnlyFile;

struct CsvLoggerOptions {
  std::string path;     ///< the .csv file; missing parent directories are created
  bool append = false;  ///< continue an existing file instead of replacing it (and its sidecars)
};

class CsvLogger : public MetricLogger {
 public:
  /// Opens (creates, truncates unless `append`) the file; without `append` the sidecars
  /// of an earlier run are removed. A zae::Error naming the path when it cannot be opened
  /// or, in append mode, when the existing file is not a table this logger wrote.
  explicit CsvLogger(CsvLoggerOptions options);
  ~CsvLogger() override;

  std::string name() const override { return "csv"; }
  /// Writes config_path() (indented JSON, numbers as given).
  void log_config(const json::Value& config) override;
  /// Appends one row (rewriting the file first when the row brings new keys).
  void log_metrics(const MetricValues& values, int64_t step) override;
  /// Merges into the summary (latest value per key) and rewrites summary_path().
  void log_summary(const MetricValues& values) override;
  /// Nothing is buffered in the program (every row went to the kernel already).
  void flush() override;
  /// fsync and close; CSV has no place for `success`. Later calls are ignored.
  void finish(bool success) override;

  const std::string& path() const { return options_.path; }
  /// <path minus .csv>.config.json
  const std::string& config_path() const { return config_path_; }
  /// <path minus .csv>.summary.json
  const std::string& summary_path() const { return summary_path_; }
  /// The header: "step", "wall_time", then the metric keys in order.
  std::vector<std::string> columns() const;

 private:
  void open_existing();
  std::string format_row(const MetricValues& values, int64_t step, double wall_time) const;
  bool rewrite_with(const std::vector<std::string>& added, const MetricValues& values, int64_t step,
                    double wall_time);
  void write_sidecar(const std::string& path, const std::string& text);

  CsvLoggerOptions options_;
  std::string config_path_, summary_path_;
  mutable std::mutex mutex_;
  std::unique_ptr<AppendOnlyFile> file_;
  std::vector<std::string> keys_;                  // metric columns after step, wall_time
  std::unordered_map<std::string, size_t> index_;  // key -> position in keys_
  bool header_written_ = false;
  MetricValues summary_;
  bool sidecar_warned_ = false;
  bool finished_ = false;
};

}  // namespace zae::io
