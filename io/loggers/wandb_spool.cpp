// The W&B offline spool: history.jsonl + run.json (see wandb_spool.h).
#include "io/loggers/wandb_spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/state_json.h"

namespace zae::io {

namespace {

namespace fs = std::filesystem;

std::string run_json_path(const std::string& spool) { return (fs::path(spool) / "run.json").string(); }
std::string history_path(const std::string& spool) { return (fs::path(spool) / "history.jsonl").string(); }

// An exclusive flock on <spool>/.lock for the life of the object (10 s at most to get it).
class SpoolLock {
 public:
  explicit SpoolLock(const std::string& spool) {
    const std::string p = (fs::path(spool) / ".lock").string();
    fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    ZAE_CHECK(fd_ >= 0, "wandb spool: cannot open the lock file '", p, "': ", std::strerror(errno));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        const int e = errno;
        ::close(fd_);
        ZAE_FAIL("wandb spool: cannot lock '", p, "': ", std::strerror(e));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::close(fd_);
        ZAE_FAIL("wandb spool: '", p, "' stayed locked for 10 s (another zae-wandb-sync or logger holds it)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~SpoolLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;

 private:
  int fd_ = -1;
};

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  ZAE_CHECK(in.good(), "wandb spool: cannot read '", p, "': ", std::strerror(errno));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json::Value to_json(const WandBRunRecord& r) {
  using namespace state;
  json::Value o = json::Value::make_object();
  put(o, "format", string("zae-wandb-offline-run"));
  put(o, "version", integer(1));
  put(o, "run_id", string(r.run_id));
  put(o, "project", string(r.project));
  put(o, "entity", string(r.entity));
  put(o, "display_name", string(r.display_name));
  json::Value tags = json::Value::make_array();
  for (const auto& t : r.tags) tags.items.push_back(string(t));
  put(o, "tags", std::move(tags));
  put(o, "config", r.config);
  json::Value summary = json::Value::make_object();
  for (const auto& [k, v] : r.summary) put(summary, k, number(v));
  put(o, "summary", std::move(summary));
  put(o, "finished", boolean(r.finished));
  put(o, "exitcode", integer(r.exitcode));
  put(o, "stopped", boolean(r.stopped));
  put(o, "synced_lines", integer(r.synced_lines));
  put(o, "next_offset", r.next_offset ? integer(*r.next_offset) : json::Value());
  put(o, "summary_synced", boolean(r.summary_synced));
  put(o, "complete_synced", boolean(r.complete_synced));
  return o;
}

WandBRunRecord from_json(const json::Value& o, const std::string& ctx) {
  using namespace state;
  ZAE_CHECK(o.kind == json::Kind::object, ctx, ": not a JSON object");
  ZAE_CHECK(get_string(o, "format", ctx) == "zae-wandb-offline-run", ctx, ": 'format' is not zae-wandb-offline-run");
  WandBRunRecord r;
  r.run_id = get_string(o, "run_id", ctx);
  ZAE_CHECK(!r.run_id.empty(), ctx, ": 'run_id' is empty");
  r.project = get_string(o, "project", ctx);
  r.entity = get_string(o, "entity", ctx);
  r.display_name = get_string(o, "display_name", ctx);
  for (const auto& t : get(o, "tags", ctx).items) r.tags.push_back(as_string(t, ctx + ": a tag"));
  r.config = get(o, "config", ctx);
  ZAE_CHECK(r.config.kind == json::Kind::object || r.config.kind == json::Kind::null, ctx,
            ": 'config' must be an object or null, got ", json::kind_name(r.config.kind));
  const json::Value& summary = get(o, "summary", ctx);
  ZAE_CHECK(summary.kind == json::Kind::object, ctx, ": 'summary' must be an object");
  for (const auto& [k, v] : summary.members) r.summary[k] = as_double(v, ctx + ": summary '" + k + "'");
  r.finished = get_bool(o, "finished", ctx);
  r.exitcode = static_cast<int>(get_int(o, "exitcode", ctx));
  r.stopped = get_bool(o, "stopped", ctx);
  r.synced_lines = get_int(o, "synced_lines", ctx);
  ZAE_CHECK(r.synced_lines >= 0, ctx, ": 'synced_lines' is negative: ", r.synced_lines);
  const json::Value& next = get(o, "next_offset", ctx);
  if (next.kind != json::Kind::null) {
    r.next_offset = as_int(next, ctx + ": 'next_offset'");
    ZAE_CHECK(*r.next_offset >= 0, ctx, ": 'next_offset' is negative: ", *r.next_offset);
  }
  r.summary_synced = get_bool(o, "summary_synced", ctx);
  r.complete_synced = get_bool(o, "complete_synced", ctx);
  return r;
}

void write_record(const std::string& spool, const WandBRunRecord& r) {
  write_file_atomic(run_json_path(spool), json::dump(to_json(r)) + "\n");
}

// Cuts a torn last line (no '\n') off history.jsonl and returns the number of lines.
int64_t repair_and_count(const std::string& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return 0;
  const std::string text = read_all(p);
  int64_t n = 0;
  size_t last_nl = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') {
      ++n;
      last_nl = i;
    }
  const size_t keep = last_nl == std::string::npos ? 0 : last_nl + 1;
  if (keep != text.size()) {
    fs::resize_file(p, keep, ec);
    ZAE_CHECK(!ec, "wandb spool: cannot cut the torn last line off '", p, "': ", ec.message());
  }
  return n;
}

}  // namespace

std::string wandb_spool_dir(const std::string& dir, const std::string& run_id) {
  return (fs::path(dir) / ("offline-run-" + run_id)).string();
}

bool is_wandb_spool_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(run_json_path(path), ec);
}

WandBRunRecord read_wandb_run_record(const std::string& spool_dir) {
  const std::string p = run_json_path(spool_dir);
  return from_json(json::parse(read_all(p), p), p);
}

void update_wandb_run_record(const std::string& spool_dir, const std::function<void(WandBRunRecord&)>& edit) {
  SpoolLock lock(spool_dir);
  WandBRunRecord r = read_wandb_run_record(spool_dir);
  edit(r);
  write_record(spool_dir, r);
}

std::vector<std::string> read_wandb_history(const std::string& spool_dir) {
  const std::string p = history_path(spool_dir);
  std::vector<std::string> lines;
  std::error_code ec;
  if (!fs::exists(p, ec)) return lines;
  const std::string text = read_all(p);
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') {
      lines.emplace_back(text, start, i - start);
      start = i + 1;
    }
  return lines;
}

WandBSpool::WandBSpool(const std::string& dir, const WandBRunRecord& record) : dir_(wandb_spool_dir(dir, record.run_id)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  ZAE_CHECK(!ec, "WandBLogger: cannot create the offline spool directory '", dir_, "': ", ec.message());
  SpoolLock lock(dir_);
  lines_ = repair_and_count(history_path(dir_));
  if (!is_wandb_spool_dir(dir_)) {
    WandBRunRecord fresh = record;
    fresh.synced_lines = 0;
    fresh.summary_synced = fresh.complete_synced = false;
    if (lines_ > 0) fresh.next_offset.reset();  // lines of unknown origin: let the server say
    write_record(dir_, fresh);
  } else {
    WandBRunRecord old = read_wandb_run_record(dir_);
    if (old.synced_lines >= lines_) {
      old.synced_lines = lines_;
      old.next_offset = record.next_offset;
    }
    old.finished = false;  // this run is live again
    old.complete_synced = false;
    write_record(dir_, old);
  }
  history_ = std::make_unique<AppendOnlyFile>(history_path(dir_), false, "WandBLogger");
}

bool WandBSpool::append(const std::string& line) {
  if (!history_->append(line + "\n")) return false;
  ++lines_;
  return true;
}

std::string WandBSpool::update(const WandBRunRecord& record) {
  try {
    update_wandb_run_record(dir_, [&](WandBRunRecord& r) {
      r.run_id = record.run_id;
      r.project = record.project;
      r.entity = record.entity;
      r.display_name = record.display_name;
      r.tags = record.tags;
      if (record.config.kind != json::Kind::null) r.config = record.config;
      r.summary = record.summary;
      r.finished = record.finished;
      r.exitcode = record.exitcode;
      r.stopped = r.stopped || record.stopped;
      r.summary_synced = false;
      if (record.finished) r.complete_synced = false;
    });
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace zae::io
