// EventWriter (buffered, crash-consistent appends of TFRecord-framed Events) and
// TensorBoardLogger (the MetricLogger over it). See the header for the contracts.
#include "io/loggers/tensorboard_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/error.h"
#include "io/atomic_file.h"

namespace zae::io {
namespace {

std::atomic<int64_t> g_file_counter{0};

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/' || c == '\0') c = '_';
  return h;
}

// Pretty-printed JSON (2-space indent) for the config text summary.
void pretty(const json::Value& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent + 2), ' ');
  switch (v.kind) {
    case json::Kind::object: {
      if (v.members.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      for (size_t i = 0; i < v.members.size(); ++i) {
        out += pad;
        json::append_quoted(out, v.members[i].first);
        out += ": ";
        pretty(v.members[i].second, indent + 2, out);
        out += i + 1 < v.members.size() ? ",\n" : "\n";
      }
      out += std::string(static_cast<size_t>(indent), ' ') + "}";
      return;
    }
    case json::Kind::array: {
      if (v.items.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (size_t i = 0; i < v.items.size(); ++i) {
        out += pad;
        pretty(v.items[i], indent + 2, out);
        out += i + 1 < v.items.size() ? ",\n" : "\n";
      }
      out += std::string(static_cast<size_t>(indent), ' ') + "]";
      return;
    }
    default:
      out += json::dump(v);
  }
}

}  // namespace

double tensorboard::wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string tensorboard::event_file_name(int64_t unix_seconds, const std::string& host, int64_t pid, int64_t n,
                                         const std::string& suffix) {
  char head[64];
  std::snprintf(head, sizeof head, "events.out.tfevents.%010" PRId64 ".", unix_seconds);
  return head + host + "." + std::to_string(pid) + "." + std::to_string(n) + suffix;
}

// ---- EventWriter ------------------------------------------------------------------------

EventWriter::EventWriter(std::string path, int fd, EventWriterOptions options)
    : path_(std::move(path)), fd_(fd), options_(std::move(options)) {
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) base_size_ = st.st_size;
  write_file_version();
}

EventWriter::EventWriter(const std::string& log_dir, EventWriterOptions options) : options_(std::move(options)) {
  ZAE_CHECK(!log_dir.empty(), "tensorboard: the log directory is empty");
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  std::error_code dir_ec;
  ZAE_CHECK(std::filesystem::is_directory(log_dir, dir_ec), "tensorboard: cannot create the log directory ", log_dir,
            ": ", ec ? ec.message() : dir_ec ? dir_ec.message() : std::string("a file of that name is in the way"));
  const double now = tensorboard::wall_time_now();
  const std::string host = host_name();
  for (int attempt = 0; attempt < 1000 && fd_ < 0; ++attempt) {
    const std::string name = tensorboard::event_file_name(static_cast<int64_t>(now), host, ::getpid(),
                                             g_file_counter.fetch_add(1), options_.filename_suffix);
    path_ = (std::filesystem::path(log_dir) / name).string();
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    ZAE_CHECK(fd_ >= 0 || errno == EEXIST, "tensorboard: cannot create the event file ", path_, ": ",
              std::strerror(errno));
  }
  ZAE_CHECK(fd_ >= 0, "tensorboard: no free event file name in ", log_dir, " (1000 tries, last ", path_, ")");
  write_file_version();
}

std::unique_ptr<EventWriter> EventWriter::open_path(const std::string& file_path, EventWriterOptions options) {
  ZAE_CHECK(!file_path.empty(), "tensorboard: the event file path is empty");
  const int fd = ::open(file_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ZAE_CHECK(fd >= 0, "tensorboard: cannot open the event file ", file_path, ": ", std::strerror(errno));
  return std::unique_ptr<EventWriter>(new EventWriter(file_path, fd, std::move(options)));
}

EventWriter::~EventWriter() { close(); }

void EventWriter::write_file_version() {
  tensorboard::Event e;
  e.wall_time = tensorboard::wall_time_now();
  e.file_version = tensorboard::kFileVersion;
  write_event(e);
  flush();  // readers see a valid file at once
}

void EventWriter::warn_once(bool& flag, const std::string& what) {
  if (flag) return;
  flag = true;
  std::fprintf(stderr, "zae: warning: tensorboard: %s: %s\n", path_.c_str(), what.c_str());
}

bool EventWriter::write_record(std::string_view data) {
  if (fd_ < 0) return false;
  if (failing_ && pending_.size() + data.size() + 16 > options_.max_pending_bytes) {
    ++records_dropped_;
    warn_once(warned_drop_, "dropping events: " + std::to_string(pending_.size()) +
                                " bytes are buffered while writes fail (further drops are not reported)");
    return false;
  }
  tensorboard::append_record(pending_, data);
  ++records_accepted_;
  if (!failing_ && pending_.size() >= options_.auto_flush_bytes) flush();
  return true;
}

bool EventWriter::write_event(const tensorboard::Event& event) { return write_record(tensorboard::encode_event(event)); }

bool EventWriter::write_scalar(const std::string& tag, float value, int64_t step, double wall_time) {
  return write_event(tensorboard::make_scalar_event(wall_time, step, tag, value));
}

bool EventWriter::write_histogram(const std::string& tag, const tensorboard::Histogram& histogram, int64_t step,
                                  double wall_time) {
  return write_event(tensorboard::make_histogram_event(wall_time, step, tag, histogram));
}

bool EventWriter::write_text(const std::string& tag, const std::string& text, int64_t step, double wall_time) {
  return write_event(tensorboard::make_text_event(wall_time, step, tag, text));
}

bool EventWriter::flush() {
  if (fd_ < 0 || pending_.empty()) return pending_.empty();
  size_t done = 0;
  int err = 0;
  while (done < pending_.size()) {
    const ssize_t w = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(w);
  }
  if (done == pending_.size()) {
    bytes_written_ += done;
    pending_.clear();
    failing_ = false;
    return true;
  }
  if (done > 0) {
    // Cut the torn record off so the file ends on a record boundary; where that is
    // impossible, keep what went out and send the rest next time (the file is whole again
    // once a later flush succeeds).
    if (::ftruncate(fd_, base_size_ + static_cast<off_t>(bytes_written_)) != 0) {
      warn_once(warned_truncate_, std::string("cannot cut a partial write back: ") + std::strerror(errno));
      bytes_written_ += done;
      pending_.erase(0, done);
    }
  }
  failing_ = true;
  warn_once(warned_write_, std::string("cannot write: ") + std::strerror(err) +
                               "; events stay buffered and are retried at the next flush (further "
                               "failures are not reported)");
  return false;
}

void EventWriter::close() {
  if (fd_ < 0) return;
  flush();
  if (!pending_.empty()) {
    std::fprintf(stderr, "zae: warning: tensorboard: %s: %zu bytes of events could not be written and are lost\n",
                 path_.c_str(), pending_.size());
    pending_.clear();
  }
  ::fsync(fd_);  // best effort: the data reached the kernel already
  ::close(fd_);
  fd_ = -1;
}

// ---- TensorBoardLogger ------------------------------------------------------------------

TensorBoardLogger::TensorBoardLogger(TensorBoardOptions options) : options_(std::move(options)) {
  ZAE_CHECK(!options_.log_dir.empty(), "TensorBoardLogger: log_dir is empty");
  ZAE_CHECK(options_.flush_interval.count() >= 0, "TensorBoardLogger: flush_interval must be >= 0 ms, got ",
            options_.flush_interval.count());
  ZAE_CHECK(options_.histogram.bins != tensorboard::HistogramBins::uniform || options_.histogram.uniform_buckets >= 1,
            "TensorBoardLogger: histogram.uniform_buckets must be at least 1, got ",
            options_.histogram.uniform_buckets);
  EventWriterOptions wo;
  wo.filename_suffix = options_.filename_suffix;
  wo.max_pending_bytes = options_.max_pending_bytes;
  writer_ = std::make_unique<EventWriter>(options_.log_dir, wo);
  if (options_.flush_interval.count() > 0) flusher_ = std::thread([this] { flusher_loop(); });
}

TensorBoardLogger::~TensorBoardLogger() {
  try {
    finish(true);
  } catch (...) {
  }
}

std::string TensorBoardLogger::event_file() const { return writer_->path(); }

void TensorBoardLogger::warn_once(bool& flag, const std::string& what) {
  if (flag) return;
  flag = true;
  std::fprintf(stderr, "zae: warning: tensorboard: %s\n", what.c_str());
}

void TensorBoardLogger::flusher_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.flush_interval, [this] { return stopping_; });
    if (stopping_) break;
    writer_->flush();
  }
}

void TensorBoardLogger::after_write_locked() {
  if (options_.flush_interval.count() == 0) writer_->flush();
}

void TensorBoardLogger::log_config(const json::Value& config) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  try {
    if (options_.config_json) {
      const std::string path = (std::filesystem::path(options_.log_dir) / "config.json").string();
      try {
        write_file_atomic(path, json::dump(config) + "\n");
      } catch (const std::exception& e) {
        warn_once(warned_config_, std::string("cannot write the config: ") + e.what());
      }
    }
    if (options_.config_text) {
      std::string text = "    ";  // a Markdown code block: every line indented by 4 spaces
      std::string body;
      pretty(config, 0, body);
      for (char c : body) {
        text += c;
        if (c == '\n') text += "    ";
      }
      writer_->write_text("config", text, last_step_, tensorboard::wall_time_now());
      after_write_locked();
    }
  } catch (const std::exception& e) {
    warn_once(warned_error_, std::string("log_config failed: ") + e.what());
  }
}

void TensorBoardLogger::log_metrics(const MetricValues& values, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  try {
    const double now = tensorboard::wall_time_now();
    for (const auto& [key, value] : values) writer_->write_scalar(key, static_cast<float>(value), step, now);
    last_step_ = std::max(last_step_, step);
    after_write_locked();
  } catch (const std::exception& e) {
    warn_once(warned_error_, std::string("log_metrics failed: ") + e.what());
  }
}

void TensorBoardLogger::log_summary(const MetricValues& values) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  try {
    const double now = tensorboard::wall_time_now();
    for (const auto& [key, value] : values)
      writer_->write_scalar(options_.summary_prefix + key, static_cast<float>(value), last_step_, now);
    after_write_locked();
  } catch (const std::exception& e) {
    warn_once(warned_error_, std::string("log_summary failed: ") + e.what());
  }
}

template <class T>
void TensorBoardLogger::histogram_impl(const std::string& tag, const T* values, size_t n, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  try {
    size_t skipped = 0;
    tensorboard::Histogram h = tensorboard::make_histogram(values, n, options_.histogram, &skipped);
    last_step_ = std::max(last_step_, step);
    if (skipped > 0)
      warn_once(warned_histogram_, "histogram '" + tag + "' at step " + std::to_string(step) + ": " +
                                       std::to_string(skipped) + " of " + std::to_string(n) +
                                       " values are NaN or infinite and are left out (further cases are not "
                                       "reported)");
    if (h.num == 0) return;
    writer_->write_histogram(tag, h, step, tensorboard::wall_time_now());
    after_write_locked();
  } catch (const std::exception& e) {
    warn_once(warned_error_, std::string("log_histogram failed: ") + e.what());
  }
}

void TensorBoardLogger::log_histogram(const std::string& tag, const std::vector<double>& values, int64_t step) {
  histogram_impl(tag, values.data(), values.size(), step);
}

void TensorBoardLogger::log_histogram(const std::string& tag, const float* values, size_t n, int64_t step) {
  histogram_impl(tag, values, n, step);
}

void TensorBoardLogger::log_text(const std::string& tag, const std::string& text, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  try {
    writer_->write_text(tag, text, step, tensorboard::wall_time_now());
    last_step_ = std::max(last_step_, step);
    after_write_locked();
  } catch (const std::exception& e) {
    warn_once(warned_error_, std::string("log_text failed: ") + e.what());
  }
}

void TensorBoardLogger::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  writer_->flush();
}

void TensorBoardLogger::finish(bool /*success*/) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    finished_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  writer_->close();
}

}  // namespace zae::io
