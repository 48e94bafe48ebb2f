// Writing TensorBoard event files without TensorFlow or protobuf.
//
// EventWriter: one event file, events.out.tfevents.<10-digit Unix time>.<host>.<pid>.<n>
// (n: a per-process counter; the file is created exclusively, so two writers never share
// a file), whose first record is Event{wall_time, file_version "brain.Event:2"}. Records
// (io/loggers/tensorboard_proto.h) are buffered in memory and go to the file on flush():
// with one write(2) each time, cut back to the last whole record when a write fails part
// way, so the file always ends on a record boundary once a flush returns. A failed flush
// keeps the events buffered and retries at the next flush; beyond max_pending_bytes newer
// events are dropped (counted). Each kind of trouble is one warning on stderr
// ("zae: warning: tensorboard: ..."), never an exception. Not thread-safe.
//
// TensorBoardLogger: the MetricLogger over one EventWriter in `log_dir`.
//   log_metrics(values, step): one Event per key, Summary.Value{tag = key, simple_value =
//     float(value)}, at `step`, wall_time = now.
//   log_histogram(tag, values, step): Summary.Value.histo (tensorboard_histogram.h layout).
//   log_config(config): `log_dir`/config.json (compact JSON, replaced atomically) and a text
//     summary "config" (the JSON pretty-printed as a Markdown code block, TensorBoard's
//     Text tab) at the latest step.
//   log_summary(values): scalars "summary/<key>" at the latest step logged so far (the
//     largest step given to log_metrics / log_histogram / log_text; 0 before any).
//   flush(): writes the buffer; finish(success): flushes, fsyncs and closes the file
//     (TensorBoard has no run status: `success` is not recorded). Later calls are ignored.
// Events reach the file at least every flush_interval (a background thread; 0 = after
// every call), on flush() and on finish(). Safe to call from several threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "io/loggers/metric_logger.h"
#include "io/loggers/tensorboard_histogram.h"
#include "io/loggers/tensorboard_proto.h"

namespace zae::io {

namespace tensorboard {
/// Seconds since the Unix epoch, as TensorBoard's wall_time.
double wall_time_now();

/// "events.out.tfevents.<10-digit time>.<host>.<pid>.<n><suffix>".
std::string event_file_name(int64_t unix_seconds, const std::string& host, int64_t pid, int64_t n,
                            const std::string& suffix = "");
}  // namespace tensorboard

struct EventWriterOptions {
  std::string filename_suffix{};              ///< appended to the file name ("" or e.g. ".train")
  size_t max_pending_bytes = size_t{64} << 20;  ///< buffered while writes fail; newer events dropped beyond
  size_t auto_flush_bytes = size_t{1} << 20;  ///< a write_* that leaves this much buffered flushes
};

class EventWriter {
 public:
  /// Creates `log_dir` (and parents) and a new event file in it, and writes the
  /// file_version record. A zae::Error naming the path when either is impossible.
  explicit EventWriter(const std::string& log_dir, EventWriterOptions options = {});
  /// Appends to the file at `file_path` (created if missing; an existing file is not
  /// truncated), starting with a file_version record: for tests (/dev/full) and tools.
  static std::unique_ptr<EventWriter> open_path(const std::string& file_path, EventWriterOptions options = {});
  ~EventWriter();  ///< close(); never throws
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  /// Buffers one event. False when it was dropped (closed, or the buffer is full while
  /// writes fail). Never throws for I/O trouble.
  bool write_event(const tensorboard::Event& event);
  /// Buffers one record's data (an already serialized Event).
  bool write_record(std::string_view data);
  bool write_scalar(const std::string& tag, float value, int64_t step, double wall_time);
  bool write_histogram(const std::string& tag, const tensorboard::Histogram& histogram, int64_t step,
                       double wall_time);
  bool write_text(const std::string& tag, const std::string& text, int64_t step, double wall_time);

  /// Writes the buffer to the file. True when nothing is left buffered; false on a write
  /// error (warned once; the events stay buffered for the next flush).
  bool flush();
  /// flush, fsync, close. Events still buffered after a failed final flush are lost (warned).
  void close();

  /// The event file's path.
  const std::string& path() const { return path_; }
  /// Bytes buffered, not yet in the file.
  size_t pending_bytes() const { return pending_.size(); }
  /// Bytes in the file written by this writer (whole records only).
  uint64_t bytes_written() const { return bytes_written_; }
  /// Records accepted / dropped so far (the file_version record included).
  uint64_t records_accepted() const { return records_accepted_; }
  uint64_t records_dropped() const { return records_dropped_; }
  /// Whether the last flush failed.
  bool failing() const { return failing_; }

 private:
  EventWriter(std::string path, int fd, EventWriterOptions options);
  void write_file_version();
  void warn_once(bool& flag, const std::string& what);

  std::string path_;
  int fd_ = -1;
  EventWriterOptions options_;
  std::string pending_;
  uint64_t bytes_written_ = 0;
  off_t base_size_ = 0;  // the file's size when opened
  uint64_t records_accepted_ = 0, records_dropped_ = 0;
  bool failing_ = false;
  bool warned_write_ = false, warned_drop_ = false, warned_truncate_ = false;
};

struct TensorBoardOptions {
  std::string log_dir{};  ///< created (with parents) when missing
  /// Buffered events reach the file at least this often (0: after every call).
  std::chrono::milliseconds flush_interval{std::chrono::seconds(10)};
  tensorboard::HistogramOptions histogram{};  ///< bucket layout of log_histogram
  bool config_json = true;                    ///< log_config writes log_dir/config.json
  bool config_text = true;                    ///< log_config writes the text summary "config"
  std::string summary_prefix = "summary/";    ///< log_summary's tag prefix
  std::string filename_suffix{};              ///< appended to the event file name
  size_t max_pending_bytes = size_t{64} << 20;  ///< see EventWriterOptions
};

class TensorBoardLogger : public MetricLogger {
 public:
  /// Creates log_dir and the event file; a zae::Error naming the path when impossible, or
  /// for bad options (empty log_dir, negative flush_interval, uniform_buckets < 1).
  explicit TensorBoardLogger(TensorBoardOptions options);
  ~TensorBoardLogger() override;  ///< finish(true) unless finished; never throws

  std::string name() const override { return "tensorboard"; }
  void log_config(const json::Value& config) override;
  void log_metrics(const MetricValues& values, int64_t step) override;
  void log_summary(const MetricValues& values) override;
  void flush() override;
  void finish(bool success) override;

  /// A histogram of `values` (non-finite values left out; nothing is written when none is
  /// finite) under `tag` at `step`.
  void log_histogram(const std::string& tag, const std::vector<double>& values, int64_t step);
  void log_histogram(const std::string& tag, const float* values, size_t n, int64_t step);
  /// A text summary (Markdown) under `tag` at `step`.
  void log_text(const std::string& tag, const std::string& text, int64_t step);

  const std::string& log_dir() const { return options_.log_dir; }
  /// The event file this logger writes.
  std::string event_file() const;

 private:
  template <class T>
  void histogram_impl(const std::string& tag, const T* values, size_t n, int64_t step);
  void after_write_locked();
  void warn_once(bool& flag, const std::string& what);
  void flusher_loop();

  TensorBoardOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::unique_ptr<EventWriter> writer_;
  int64_t last_step_ = 0;
  bool finished_ = false, stopping_ = false;
  bool warned_config_ = false, warned_histogram_ = false, warned_error_ = false;
  std::thread flusher_;
};

}  // namespace zae::io
