// WandBLogger (see wandb_logger.h). Threads: the training thread formats rows and
// enqueues them; the BatchingWorker thread does every network call. State touched by both
// sits under `mu` (summary, config, row numbers); the spool has its own mutex (the
// training thread writes it in offline mode and for run.json updates, the worker when it
// falls back). Rows carry their local number (`seq`); the spool writes them strictly in
// that order, starting at the first row the server did not acknowledge, whatever order
// the worker hands them over in (a queue overflow can spool newer rows before an older
// batch that is still being retried).
#include "io/loggers/wandb_logger.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <exception>
#include <map>
#include <thread>
#include <utility>

#include "engine/error.h"
#include "io/loggers/batching_worker.h"
#include "io/loggers/wandb_api.h"
#include "io/loggers/wandb_spool.h"

namespace zae::io {

namespace {

void warn(const std::string& what) {
  std::fprintf(stderr, "zae: warning: wandb: %s\n", what.c_str());
  std::fflush(stderr);
}

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

/// One history row (seq >= 0) or a wake-up for a changed config or summary (seq = -1).
struct WandBItem {
  int64_t seq = -1;
  std::string line;
};

}  // namespace

struct WandBLogger::Impl {
  WandBOptions o;  // resolved, with the key
  bool disabled = false;
  bool offline = false;  // spooling from the start (offline mode, or online without a key)
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  // Shared by the training thread and the worker.
  std::mutex mu;
  MetricValues summary;
  json::Value config;  // null until log_config
  int config_version = 0;
  int64_t next_seq = 0;
  int64_t last_step = INT64_MIN;
  bool finished = false;
  bool warned_step = false, warned_format = false;
  std::atomic<bool> spooling{false};

  // The worker thread's (and finish()'s, after the worker stopped).
  std::unique_ptr<WandBApi> api;
  bool run_created = false;
  WandBRunInfo run;
  int config_sent_version = 0;
  int64_t history_base = 0;  // the server's historyLineCount when the run was upserted
  int64_t acked = 0;         // rows the server acknowledged
  bool stopped = false;
  std::string sent_summary = "{}";  // the summary the server has (to skip requests with nothing new)

  // The spool.
  std::mutex spool_mu;
  std::unique_ptr<WandBSpool> spool;
  bool spool_failed = false;
  int64_t spool_next_seq = 0;
  std::map<int64_t, std::string> spool_pending;  // rows waiting for an older one
  int64_t rows_lost = 0;

  std::unique_ptr<BatchingWorker<WandBItem>> worker;  // last: stops first

  WandBRunRecord record(bool finished_now, int exitcode) {
    WandBRunRecord r;
    r.run_id = o.run_id;
    r.project = run_created ? run.project : o.project;
    r.entity = run_created ? run.entity : o.entity;
    r.display_name = o.name;
    r.tags = o.tags;
    {
      std::lock_guard<std::mutex> lock(mu);
      r.config = config;
      r.summary = summary;
    }
    r.finished = finished_now;
    r.exitcode = exitcode;
    r.stopped = stopped;
    if (run_created) r.next_offset = history_base + acked;
    return r;
  }

  // Opens the spool (once). Rows from `acked` on go there. Call with spool_mu held.
  void open_spool_locked(const std::string& why) {
    spooling = true;
    if (spool || spool_failed) return;
    spool_next_seq = acked;
    try {
      spool = std::make_unique<WandBSpool>(o.dir, record(false, 0));
    } catch (const std::exception& e) {
      spool_failed = true;
      warn("cannot create the offline spool (" + std::string(e.what()) + "); rows that cannot be uploaded are lost");
      return;
    }
    if (!why.empty())
      warn(why + "; from now on rows are kept in " + spool->path() + "; upload them later with: zae-wandb-sync " +
           spool->path());
  }

  // Writes rows in `seq` order (the spool_mu held).
  void spool_rows_locked(const std::vector<WandBItem>& items) {
    for (const auto& item : items)
      if (item.seq >= spool_next_seq) spool_pending[item.seq] = item.line;
    while (!spool_pending.empty() && spool_pending.begin()->first == spool_next_seq) {
      if (!spool || !spool->append(spool_pending.begin()->second)) ++rows_lost;
      spool_pending.erase(spool_pending.begin());
      ++spool_next_seq;
    }
  }

  void spool_rows(const std::vector<WandBItem>& items, const std::string& why) {
    std::lock_guard<std::mutex> lock(spool_mu);
    open_spool_locked(why);
    spool_rows_locked(items);
  }

  // The run exists on the server with the latest config; "" or an error text.
  std::string ensure_run() {
    json::Value cfg;
    int version;
    {
      std::lock_guard<std::mutex> lock(mu);
      cfg = config;
      version = config_version;
    }
    if (run_created && config_sent_version == version) return "";
    WandBUpsert u;
    u.storage_id = run.storage_id;
    u.run_id = o.run_id;
    u.project = run_created ? run.project : o.project;
    u.entity = run_created ? run.entity : o.entity;
    u.display_name = o.name;
    u.config = cfg.kind == json::Kind::object ? &cfg : nullptr;
    u.tags = o.tags;
    WandBRunInfo info;
    std::string err = api->upsert_run(u, info);
    if (!err.empty()) return err;
    if (!run_created) {
      run = info;
      history_base = info.history_line_count;
      run_created = true;
    } else if (!info.storage_id.empty()) {
      run.storage_id = info.storage_id;
    }
    config_sent_version = version;
    return "";
  }

  std::string summary_json() {
    std::lock_guard<std::mutex> lock(mu);
    return wandb_summary_json(summary);
  }

  void honour_stop() {
    if (stopped) return;
    stopped = true;
    spool_rows({}, "the server stopped run " + run.entity + "/" + run.project + "/" + o.run_id +
                       " (stopped from the W&B UI?): nothing more is sent");
  }

  // BatchingWorker::send.
  std::string send(const std::vector<WandBItem>& batch) {
    if (spooling) {
      spool_rows(batch, "");
      return "";
    }
    std::string err = ensure_run();
    if (!err.empty()) return err;
    std::vector<std::string> lines;
    for (const auto& item : batch) {
      if (item.seq < 0) continue;
      if (item.seq != acked + static_cast<int64_t>(lines.size())) {  // cannot happen; never send a gap
        spool_rows(batch, "rows reached the sender out of order (row " + std::to_string(item.seq) + ", expected " +
                              std::to_string(acked + static_cast<int64_t>(lines.size())) + ")");
        return "";
      }
      lines.push_back(item.line);
    }
    const std::string summary = summary_json();
    if (lines.empty() && summary == sent_summary) return "";  // only a config change (upserted above)
    const std::string body = wandb_file_stream_body(history_base + acked, lines, &summary, std::nullopt);
    WandBStreamResult r = api->file_stream(run.entity, run.project, run.run_id, body);
    if (!r.ok()) return r.error;
    acked += static_cast<int64_t>(lines.size());
    sent_summary = summary;
    if (r.stopped) honour_stop();
    return "";
  }

  void give_up(const std::vector<WandBItem>& batch, const std::string& why) {
    spool_rows(batch, "cannot upload to " + o.base_url + " (" + why + ")");
  }

  void idle() {
    if (spooling || !run_created) return;
    WandBStreamResult r = api->file_stream(run.entity, run.project, run.run_id, "{}");
    if (r.ok() && r.stopped) honour_stop();
  }

  // finish() in online mode, after the worker stopped: the final request, retried with
  // backoff within drain_timeout; "" or why it failed.
  std::string send_final(int exitcode) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + o.drain_timeout;
    auto backoff = o.min_backoff;
    std::string err;
    for (int attempt = 1;; ++attempt) {
      // No request outlives the deadline by much (a server that accepts and never answers).
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      api->set_timeout(std::min(std::max(left, std::chrono::milliseconds(500)), o.request_timeout));
      err = ensure_run();
      if (err.empty()) {
        const std::string summary = summary_json();
        WandBStreamResult r = api->file_stream(run.entity, run.project, run.run_id,
                                               wandb_file_stream_body(history_base + acked, {}, &summary, exitcode));
        if (r.ok()) return "";
        err = r.error;
      }
      if (attempt >= o.max_attempts || Clock::now() + backoff > deadline) return err;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, o.max_backoff);
    }
  }
};

WandBLogger::WandBLogger(WandBOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = resolve_wandb_options(std::move(options));
  options_ = m.o;
  options_.api_key.clear();
  if (m.o.mode == "disabled") {
    m.disabled = true;
    return;
  }
  if (m.o.mode == "online" && m.o.api_key.empty()) {
    warn("no API key (WANDB_API_KEY is not set and ~/.netrc has none for " + m.o.base_url +
         "): running offline; upload later with: zae-wandb-sync " + wandb_spool_dir(m.o.dir, m.o.run_id));
    m.offline = true;
  }
  if (m.o.mode == "offline") m.offline = true;
  if (m.offline) {
    std::lock_guard<std::mutex> lock(m.spool_mu);
    m.spooling = true;
    m.spool = std::make_unique<WandBSpool>(m.o.dir, m.record(false, 0));  // throws: bad options
    return;
  }
  m.api = std::make_unique<WandBApi>(m.o.base_url, m.o.api_key, m.o.request_timeout);
  BatchingWorkerOptions w;
  w.interval = m.o.send_interval;
  w.min_backoff = m.o.min_backoff;
  w.max_backoff = m.o.max_backoff;
  w.max_attempts = m.o.max_attempts;
  w.capacity = m.o.queue_capacity;
  w.max_batch = m.o.max_batch_rows;
  w.idle_interval = m.o.heartbeat_interval;
  w.drain_timeout = m.o.drain_timeout;
  w.name = "zae: warning: wandb";
  m.worker = std::make_unique<BatchingWorker<WandBItem>>(
      w, [&m](const std::vector<WandBItem>& b) { return m.send(b); },
      [&m](const std::vector<WandBItem>& b, const std::string& why) { m.give_up(b, why); }, [&m] { m.idle(); });
}

WandBLogger::~WandBLogger() {
  try {
    finish(true);
  } catch (...) {
  }
}

std::string WandBLogger::spool_dir() const { return wandb_spool_dir(impl_->o.dir, impl_->o.run_id); }

bool WandBLogger::spooling() const { return impl_->spooling; }

void WandBLogger::log_config(const json::Value& config) {
  Impl& m = *impl_;
  if (m.disabled) return;
  try {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.finished) return;
      if (config.kind == json::Kind::object) {
        m.config = config;
      } else {
        m.config = json::Value::make_object();
        m.config.members.emplace_back("config", config);
      }
      ++m.config_version;
    }
    if (m.worker) m.worker->enqueue(WandBItem{});  // the worker upserts the run again (or spools)
    if (m.offline) {  // into run.json at once (a crash keeps it)
      WandBRunRecord r = m.record(false, 0);
      std::lock_guard<std::mutex> lock(m.spool_mu);
      if (const std::string err = m.spool->update(r); !err.empty())
        warn("cannot update " + m.spool->path() + "/run.json: " + err);
    }
  } catch (const std::exception& e) {
    warn(std::string("log_config failed: ") + e.what());
  }
}

void WandBLogger::log_metrics(const MetricValues& values, int64_t step) {
  Impl& m = *impl_;
  if (m.disabled) return;
  try {
    const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - m.start).count();
    const double timestamp = unix_seconds();
    WandBItem item;
    item.line = wandb_history_line(values, step, runtime, timestamp);
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.finished) return;
      if (step < m.last_step && !m.warned_step) {
        m.warned_step = true;
        warn("the step went backwards (" + std::to_string(m.last_step) + " then " + std::to_string(step) +
             "); W&B ignores rows whose _step is below an earlier one");
      }
      m.last_step = std::max(m.last_step, step);
      for (const auto& [k, v] : values) m.summary[k] = v;
      m.summary["_step"] = static_cast<double>(step);
      m.summary["_runtime"] = runtime;
      m.summary["_timestamp"] = timestamp;
      item.seq = m.next_seq++;
    }
    if (m.offline) {
      std::lock_guard<std::mutex> lock(m.spool_mu);
      m.spool_rows_locked({item});
    } else {
      m.worker->enqueue(std::move(item));
    }
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.warned_format) {
      m.warned_format = true;
      warn(std::string("log_metrics failed: ") + e.what());
    }
  }
}

void WandBLogger::log_summary(const MetricValues& values) {
  Impl& m = *impl_;
  if (m.disabled) return;
  try {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.finished) return;
      for (const auto& [k, v] : values) m.summary[k] = v;
    }
    if (m.worker) m.worker->enqueue(WandBItem{});  // sends the new summary with the next request
  } catch (const std::exception& e) {
    warn(std::string("log_summary failed: ") + e.what());
  }
}

void WandBLogger::flush() {
  Impl& m = *impl_;
  if (m.disabled) return;
  try {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.finished) return;
    }
    if (m.worker) m.worker->flush_soon();
    if (m.spooling) {
      WandBRunRecord r = m.record(false, 0);
      std::lock_guard<std::mutex> lock(m.spool_mu);
      if (m.spool) {
        const std::string err = m.spool->update(r);
        if (!err.empty()) warn("cannot update " + m.spool->path() + "/run.json: " + err);
      }
    }
  } catch (const std::exception& e) {
    warn(std::string("flush failed: ") + e.what());
  }
}

void WandBLogger::finish(bool success) {
  Impl& m = *impl_;
  if (m.disabled) return;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.finished) return;
    m.finished = true;
  }
  const int exitcode = success ? 0 : 1;
  try {
    if (m.worker) m.worker->stop(true);  // sends what is queued; the rest goes to the spool
    if (!m.spooling) {
      const std::string err = m.send_final(exitcode);
      if (!err.empty()) {
        std::lock_guard<std::mutex> lock(m.spool_mu);
        m.open_spool_locked("cannot send the end of the run to " + m.o.base_url + " (" + err + ")");
      }
    }
    if (m.spooling) {
      WandBRunRecord r = m.record(true, exitcode);
      std::lock_guard<std::mutex> lock(m.spool_mu);
      // Rows still waiting for an older one (none unless a row was lost): write them in order.
      while (!m.spool_pending.empty()) {
        m.spool_next_seq = m.spool_pending.begin()->first;
        m.spool_rows_locked({});
      }
      if (m.spool) {
        const std::string err = m.spool->update(r);
        if (!err.empty()) warn("cannot update " + m.spool->path() + "/run.json: " + err);
      }
      if (m.rows_lost > 0) warn(std::to_string(m.rows_lost) + " history rows could not be spooled and are lost");
    }
  } catch (const std::exception& e) {
    warn(std::string("finish failed: ") + e.what());
  }
}

}  // namespace zae::io
