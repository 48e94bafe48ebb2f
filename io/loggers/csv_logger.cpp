// CsvLogger: a wide CSV table, appended row by row, rewritten atomically when the
// header grows; JSON sidecars for the config and the summary.
#include "io/loggers/csv_logger.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/loggers/append_only_file.h"
#include "io/loggers/csv_format.h"
#include "io/state_json.h"

namespace zae::io {

namespace {

constexpr const char* kOwner = "CsvLogger";

std::string sidecar_base(const std::string& path) {
  const std::string ext = ".csv";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size());
  return path;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    ZAE_FAIL(kOwner, ": cannot read '", path, "': ", std::strerror(err));
  }
  std::ostringstream s;
  s << in.rdbuf();
  ZAE_CHECK(!in.bad(), kOwner, ": reading '", path, "' failed");
  return s.str();
}

std::string error_text(const std::exception& e) {
  if (const auto* z = dynamic_cast<const zae::Error*>(&e)) return z->message();
  return e.what();
}

std::string joined(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + fields[i];
  return out;
}

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

void check_row_key(const std::string& key, const std::string& path) {
  ZAE_CHECK(key != "step" && key != "wall_time", kOwner, " '", path, "': the metric key '", key,
            "' is reserved (the row's own step and wall_time columns)");
}

}  // namespace

CsvLogger::CsvLogger(CsvLoggerOptions options) : options_(std::move(options)) {
  const std::string base = sidecar_base(options_.path);
  config_path_ = base + ".config.json";
  summary_path_ = base + ".summary.json";
  file_ = std::make_unique<AppendOnlyFile>(options_.path, !options_.append, kOwner);
  if (options_.append) {
    open_existing();
  } else {
    std::error_code ec;  // an earlier run's sidecars would describe another run
    std::filesystem::remove(config_path_, ec);
    std::filesystem::remove(summary_path_, ec);
  }
}

CsvLogger::~CsvLogger() = default;

void CsvLogger::open_existing() {
  const std::string& path = options_.path;
  if (file_->initial_size() > 0) {
    const std::string text = read_whole(path);
    const csv::Parsed parsed = csv::parse_csv(text);
    if (parsed.complete_end < text.size()) {
      if (::truncate(path.c_str(), static_cast<off_t>(parsed.complete_end)) != 0) {
        const int err = errno;
        ZAE_FAIL(kOwner, ": cannot cut the torn last row off '", path, "': ", std::strerror(err));
      }
      std::fprintf(stderr, "zae: warning: %s: removed a torn last row (%zu bytes) from '%s'\n", kOwner,
                   text.size() - parsed.complete_end, path.c_str());
    }
    if (!parsed.records.empty()) {
      const std::vector<std::string>& header = parsed.records.front();
      ZAE_CHECK(header.size() >= 2 && header[0] == "step" && header[1] == "wall_time", kOwner,
                ": cannot append to '", path, "': its header does not start with step,wall_time (found '",
                joined(header).substr(0, 200), "')");
      for (size_t i = 2; i < header.size(); ++i) {
        ZAE_CHECK(header[i] != "step" && header[i] != "wall_time" && index_.emplace(header[i], keys_.size()).second,
                  kOwner, ": cannot append to '", path, "': its header names the column '", header[i], "' twice");
        keys_.push_back(header[i]);
      }
      header_written_ = true;
    }
  }
  // Keep the summary so far; a damaged sidecar is replaced at the next log_summary.
  std::error_code ec;
  if (std::filesystem::exists(summary_path_, ec)) {
    try {
      const json::Value doc = json::parse(read_whole(summary_path_), summary_path_);
      ZAE_CHECK(doc.kind == json::Kind::object, summary_path_, ": expected an object");
      for (const auto& [key, value] : doc.members) summary_[key] = state::as_double(value, summary_path_ + ": " + key);
    } catch (const std::exception& e) {
      summary_.clear();
      std::fprintf(stderr, "zae: warning: %s: ignoring the summary in '%s': %s\n", kOwner, summary_path_.c_str(),
                   error_text(e).c_str());
    }
  }
}

std::vector<std::string> CsvLogger::columns() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out{"step", "wall_time"};
  out.insert(out.end(), keys_.begin(), keys_.end());
  return out;
}

std::string CsvLogger::format_row(const MetricValues& values, int64_t step, double wall_time) const {
  std::vector<std::string> cells(2 + keys_.size());
  cells[0] = std::to_string(step);
  cells[1] = csv::format_double(wall_time);
  for (const auto& [key, value] : values) {
    const auto it = index_.find(key);
    if (it != index_.end()) cells[2 + it->second] = csv::format_double(value);  // else: a failed rewrite
  }
  std::string out;
  csv::append_record(out, cells);
  return out;
}

bool CsvLogger::rewrite_with(const std::vector<std::string>& added, const MetricValues& values, int64_t step,
                             double wall_time) {
  const std::string& path = options_.path;
  const std::vector<std::string> old_keys = keys_;
  const auto old_index = index_;
  for (const auto& key : added) {
    index_.emplace(key, keys_.size());
    keys_.push_back(key);
  }
  try {
    const csv::Parsed parsed = csv::parse_csv(read_whole(path));
    std::vector<std::string> header{"step", "wall_time"};
    header.insert(header.end(), keys_.begin(), keys_.end());
    std::string text;
    csv::append_record(text, header);
    for (size_t r = 1; r < parsed.records.size(); ++r) {
      std::vector<std::string> record = parsed.records[r];
      if (record.size() < header.size()) record.resize(header.size());  // pad with empty cells
      csv::append_record(text, record);
    }
    text += format_row(values, step, wall_time);
    write_file_atomic(path, text);
  } catch (const std::exception& e) {
    keys_ = old_keys;
    index_ = old_index;
    file_->warn_once("adding the columns " + joined(added) + " to '" + path + "' failed: " + error_text(e) +
                     "; their values are dropped until a later row brings them again");
    return false;
  }
  file_->reopen();  // appends go to the new file
  return true;
}

void CsvLogger::log_metrics(const MetricValues& values, int64_t step) {
  for (const auto& [key, value] : values) check_row_key(key, options_.path);
  const double wall_time = unix_seconds();
  std::lock_guard lock(mutex_);
  if (finished_) return;
  std::vector<std::string> added;
  for (const auto& [key, value] : values)
    if (!index_.count(key)) added.push_back(key);
  if (!added.empty() && header_written_) {
    if (rewrite_with(added, values, step, wall_time)) return;
    // The rewrite failed (warned): the row goes out with the columns the file has.
  } else {
    for (const auto& key : added) {
      index_.emplace(key, keys_.size());
      keys_.push_back(key);
    }
  }
  std::string text;
  if (!header_written_) {
    std::vector<std::string> header{"step", "wall_time"};
    header.insert(header.end(), keys_.begin(), keys_.end());
    csv::append_record(text, header);
  }
  text += format_row(values, step, wall_time);
  if (file_->append(text)) header_written_ = true;
}

void CsvLogger::write_sidecar(const std::string& path, const std::string& text) {
  try {
    write_file_atomic(path, text);
  } catch (const std::exception& e) {
    if (sidecar_warned_) return;
    sidecar_warned_ = true;
    std::fprintf(stderr, "zae: warning: %s: %s (further failures on the sidecar files are not reported)\n", kOwner,
                 error_text(e).c_str());
  }
}

void CsvLogger::log_config(const json::Value& config) {
  std::string text;
  text += json::dump_pretty(config);
  text += '\n';
  std::lock_guard lock(mutex_);
  if (finished_) return;
  write_sidecar(config_path_, text);
}

void CsvLogger::log_summary(const MetricValues& values) {
  for (const auto& [key, value] : values)
    ZAE_CHECK(json::find_invalid_utf8(key) == std::string::npos, kOwner, " '", options_.path,
              "': a summary key is not valid UTF-8");
  std::lock_guard lock(mutex_);
  if (finished_) return;
  for (const auto& [key, value] : values) summary_[key] = value;
  json::Value doc = json::Value::make_object();
  for (const auto& [key, value] : summary_) state::put(doc, key, state::number(value));
  std::string text;
  text += json::dump_pretty(doc);
  text += '\n';
  write_sidecar(summary_path_, text);
}

void CsvLogger::flush() {}

void CsvLogger::finish(bool /*success*/) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  file_->sync();
  file_->close();
}

}  // namespace zae::io
