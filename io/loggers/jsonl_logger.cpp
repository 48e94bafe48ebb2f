// JsonlLogger: one JSON object per line, each written whole by one write(2).
#include "io/loggers/jsonl_logger.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>

#include "engine/error.h"
#include "io/loggers/append_only_file.h"
#include "io/state_json.h"

namespace zae::io {

namespace {

constexpr const char* kOwner = "JsonlLogger";

// Whether the last byte of the file at `path` (of `size` bytes) is something other than '\n'.
bool ends_mid_line(const std::string& path, off_t size) {
  if (size <= 0) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char last = '\n';
  const ssize_t n = ::pread(fd, &last, 1, size - 1);
  ::close(fd);
  return n == 1 && last != '\n';
}

// A metric key must be UTF-8 (JSON text); in a row, "step" and "wall_time" are taken.
void check_key(const std::string& key, const std::string& path, bool in_row) {
  ZAE_CHECK(!in_row || (key != "step" && key != "wall_time"), kOwner, " '", path, "': the metric key '", key,
            "' is reserved (the row's own step and wall_time fields)");
  ZAE_CHECK(json::find_invalid_utf8(key) == std::string::npos, kOwner, " '", path, "': the metric key ",
            json::quote(std::string_view(key).substr(0, json::find_invalid_utf8(key))), "... is not valid UTF-8");
}

void append_number(std::string& out, double v) { out += json::dump(state::number(v)); }

// {"k":v,...} for the values of a MetricValues map.
void append_values(std::string& out, const MetricValues& values, bool leading_comma) {
  for (const auto& [key, value] : values) {
    if (leading_comma) out += ',';
    leading_comma = true;
    json::append_quoted(out, key);
    out += ':';
    append_number(out, value);
  }
}

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

JsonlLogger::JsonlLogger(JsonlLoggerOptions options) : options_(std::move(options)) {
  file_ = std::make_unique<AppendOnlyFile>(options_.path, !options_.append, kOwner);
  needs_newline_ = options_.append && ends_mid_line(options_.path, file_->initial_size());
}

JsonlLogger::~JsonlLogger() = default;

void JsonlLogger::write_line(std::string line) {
  line += '\n';
  if (needs_newline_) line.insert(line.begin(), '\n');
  if (file_->append(line)) needs_newline_ = false;
}

void JsonlLogger::log_config(const json::Value& config) {
  std::string line = "{\"config\":" + json::dump(config) + "}";
  std::lock_guard lock(mutex_);
  if (finished_) return;
  write_line(std::move(line));
}

void JsonlLogger::log_metrics(const MetricValues& values, int64_t step) {
  for (const auto& [key, value] : values) check_key(key, options_.path, true);
  std::string line = "{\"step\":" + std::to_string(step) + ",\"wall_time\":";
  append_number(line, unix_seconds());
  append_values(line, values, true);
  line += '}';
  std::lock_guard lock(mutex_);
  if (finished_) return;
  write_line(std::move(line));
}

void JsonlLogger::log_summary(const MetricValues& values) {
  for (const auto& [key, value] : values) check_key(key, options_.path, false);
  std::string line = "{\"summary\":{";
  append_values(line, values, false);
  line += "}}";
  std::lock_guard lock(mutex_);
  if (finished_) return;
  write_line(std::move(line));
}

void JsonlLogger::flush() {}

void JsonlLogger::finish(bool success) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  write_line(std::string("{\"finished\":true,\"success\":") + (success ? "true" : "false") + "}");
  file_->sync();
  file_->close();
}

}  // namespace zae::io
