// MLflowLogger (io/loggers/mlflow_logger.h): the caller side. It resolves the options,
// turns log_* calls into items (metrics, params, the run's start and end) and queues them
// in a BatchingWorker, whose thread hands them to an mlflow::Session
// (io/loggers/mlflow_session.h) that talks to the server and spools.
// Invariants: nothing here touches the network; log_* / flush / finish hold `mu` only for
// queueing; params are sent once per key; the run ends once (finish or the destructor).
#include "io/loggers/mlflow_logger.h"

#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "io/http_client.h"
#include "io/loggers/batching_worker.h"
#include "io/loggers/mlflow_protocol.h"
#include "io/loggers/mlflow_session.h"

namespace zae::io {

namespace {

using mlflow::Item;
using mlflow::KeyValue;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

void warn(const std::string& what) { std::fprintf(stderr, "zae: warning: mlflow: %s\n", what.c_str()); }

std::string shorten(const std::string& s, size_t n = 100) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string resolve_uri(std::string uri) {
  if (uri.empty()) uri = env("MLFLOW_TRACKING_URI");
  ZAE_CHECK(!uri.empty(),
            "MLflowLogger: no tracking server given: set MLflowOptions::tracking_uri or MLFLOW_TRACKING_URI to the "
            "http:// or https:// address of an MLflow tracking server (local file stores need MLflow's Python "
            "client; serve one with `mlflow server --backend-store-uri <store>`)");
  for (unsigned char c : uri)
    ZAE_CHECK(c > 0x20 && c != 0x7F, "MLflowLogger: tracking URI '", uri,
              "' contains a space or control character");
  const std::string l = lower(uri);
  const bool http = l.rfind("http://", 0) == 0, https = l.rfind("https://", 0) == 0;
  if (!http && !https) {
    std::string why = "only http:// and https:// tracking servers are supported";
    if (l.rfind("databricks", 0) == 0)
      why += "; Databricks workspaces are not";
    else if (l.rfind("file:", 0) == 0 || l.find(':') == std::string::npos)
      why += "; a local file store is not (serve it with `mlflow server --backend-store-uri <store>` and use its "
             "http:// address)";
    else
      why += " (a database store is served by `mlflow server --backend-store-uri <store>`; use its http:// address)";
    ZAE_FAIL("MLflowLogger: tracking URI '", uri, "' is not supported: ", why);
  }
  const size_t host_at = http ? 7 : 8;
  ZAE_CHECK(uri.size() > host_at && uri[host_at] != '/', "MLflowLogger: tracking URI '", uri, "' has no host");
  while (uri.size() > host_at + 1 && uri.back() == '/') uri.pop_back();
  return uri;
}

std::string program_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("zae");
}

std::string user_name() {
  for (const char* v : {"USER", "LOGNAME"})
    if (!env(v).empty()) return env(v);
  struct passwd pw, *res = nullptr;
  char buf[1024];
  if (::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &res) == 0 && res != nullptr) return res->pw_name;
  return "";
}

std::string file_label(const std::string& run_name, int64_t start_ms) {
  std::string label = run_name.empty() ? "run" : run_name.substr(0, 100);
  for (char& c : label)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return label + "-" + std::to_string(start_ms) + "-" + std::to_string(::getpid());
}

}  // namespace

struct MLflowLogger::State {
  MLflowOptions opt;

  // Caller side, under mu.
  std::mutex mu;
  std::map<std::string, std::string> params;
  std::unordered_map<std::string, std::string> key_cache;
  std::set<std::string> warned;
  uint64_t next_seq = 0;
  int64_t last_step = 0;
  bool finished = false;

  std::unique_ptr<mlflow::Session> session;      // worker thread (and the accessors)
  std::unique_ptr<BatchingWorker<Item>> worker;  // last: destroyed first

  std::string key(const std::string& k) {
    auto it = key_cache.find(k);
    if (it != key_cache.end()) return it->second;
    std::string s = mlflow::sanitize_key(k);
    if (s != k && warned.insert("key:" + k).second)
      warn("key '" + shorten(k) + "' is not a valid MLflow name; logging it as '" + shorten(s) + "'");
    return key_cache.emplace(k, std::move(s)).first->second;
  }
  void push(Item it) {
    it.seq = next_seq++;
    worker->enqueue(std::move(it));
  }
};

MLflowLogger::MLflowLogger(MLflowOptions options) : s_(std::make_unique<State>()) {
  State& s = *s_;
  MLflowOptions& o = s.opt;
  o = std::move(options);
  o.tracking_uri = resolve_uri(o.tracking_uri);
  if (o.experiment_name.empty()) o.experiment_name = env("MLFLOW_EXPERIMENT_NAME");
  if (o.experiment_name.empty()) o.experiment_name = "Default";
  ZAE_CHECK(o.experiment_name.size() <= 500, "MLflowLogger: experiment name is ", o.experiment_name.size(),
            " bytes; MLflow allows at most 500");
  ZAE_CHECK(o.send_interval.count() >= 0 && o.request_timeout.count() > 0 && o.min_backoff.count() >= 0 &&
                o.max_backoff >= o.min_backoff && o.drain_timeout.count() >= 0,
            "MLflowLogger: send_interval (", o.send_interval.count(), " ms), min_backoff (", o.min_backoff.count(),
            " ms) and drain_timeout (", o.drain_timeout.count(), " ms) must be >= 0, request_timeout (",
            o.request_timeout.count(), " ms) > 0, and max_backoff (", o.max_backoff.count(), " ms) >= min_backoff");
  ZAE_CHECK(o.max_attempts >= 1, "MLflowLogger: max_attempts must be >= 1, got ", o.max_attempts);
  ZAE_CHECK(o.queue_capacity >= 1, "MLflowLogger: queue_capacity must be >= 1");
  if (o.spool_dir.empty()) o.spool_dir = "mlruns-spool";
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::absolute(o.spool_dir, ec);
  ZAE_CHECK(!ec, "MLflowLogger: spool_dir '", o.spool_dir, "': ", ec.message());
  ZAE_CHECK(!std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec), "MLflowLogger: spool_dir '",
            o.spool_dir, "' exists and is not a directory");
  // The spool is created only when needed: check now that it could be.
  std::filesystem::path existing = dir;
  while (!std::filesystem::exists(existing, ec) && existing.has_parent_path() && existing.parent_path() != existing)
    existing = existing.parent_path();
  ZAE_CHECK(::access(existing.c_str(), W_OK | X_OK) == 0, "MLflowLogger: spool_dir '", o.spool_dir,
            "' cannot be created: ", existing.string(), " is not writable");
  mlflow::SessionConfig c;
  c.tracking_uri = o.tracking_uri;
  c.experiment_name = o.experiment_name;
  c.run_name = o.run_name;
  c.request_timeout = o.request_timeout;
  c.start_ms = now_ms();
  c.spool_path = (dir / (file_label(o.run_name, c.start_ms) + ".jsonl")).string();

  // Run tags: the user's, then MLflow's own (as its Python client sets them).
  std::map<std::string, std::string> tags;
  for (const auto& [k, v] : o.tags)
    tags[mlflow::sanitize_key(k)] = mlflow::truncate_value(v, mlflow::kMaxTagValueLength);
  if (!o.run_name.empty()) tags["mlflow.runName"] = o.run_name;
  tags.emplace("mlflow.source.name", program_path());
  tags.emplace("mlflow.source.type", "LOCAL");
  if (const std::string u = user_name(); !u.empty()) tags.emplace("mlflow.user", u);
  for (const auto& [k, v] : tags) c.run_tags.push_back({k, v});

  if (const std::string token = env("MLFLOW_TRACKING_TOKEN"); !token.empty())
    c.headers.emplace_back("Authorization", "Bearer " + token);
  else if (!env("MLFLOW_TRACKING_USERNAME").empty())
    c.headers.emplace_back("Authorization",
                           basic_auth(env("MLFLOW_TRACKING_USERNAME"), env("MLFLOW_TRACKING_PASSWORD")));
  c.headers.emplace_back("Content-Type", "application/json");
  s.session = std::make_unique<mlflow::Session>(std::move(c));
  BatchingWorkerOptions w;
  w.interval = o.send_interval;
  w.min_backoff = o.min_backoff;
  w.max_backoff = o.max_backoff;
  w.max_attempts = o.max_attempts;
  w.capacity = o.queue_capacity;
  w.idle_interval = std::chrono::milliseconds(0);
  w.drain_timeout = o.drain_timeout;
  w.name = "mlflow";
  mlflow::Session* session = s.session.get();
  s.worker = std::make_unique<BatchingWorker<Item>>(
      w, [session](const std::vector<Item>& b) { return session->send(b); },
      [session](const std::vector<Item>& b, const std::string& why) { session->give_up(b, why); });
  // Create the run now, in the background, so it shows up when training starts.
  std::lock_guard<std::mutex> lk(s.mu);
  s.push(Item{});
  s.worker->flush_soon();
}

MLflowLogger::~MLflowLogger() {
  try {
    end_run("KILLED");
  } catch (...) {
  }
}

void MLflowLogger::log_config(const json::Value& config) {
  try {
    std::lock_guard<std::mutex> lk(s_->mu);
    if (s_->finished) return;
    for (const KeyValue& kv : mlflow::flatten_config(config)) {
      const std::string k = s_->key(kv.key);
      std::string v = mlflow::truncate_value(kv.value, mlflow::kMaxParamValueLength);
      if (v.size() != kv.value.size() && s_->warned.insert("long:" + k).second)
        warn("param '" + k + "' is " + std::to_string(kv.value.size()) + " bytes; MLflow keeps at most " +
             std::to_string(mlflow::kMaxParamValueLength) + ", so it is truncated");
      auto [it, fresh] = s_->params.emplace(k, v);
      if (!fresh) {
        if (it->second != v && s_->warned.insert("param:" + k).second)
          warn("param '" + k + "' was already logged as '" + shorten(it->second) +
               "'; MLflow params are write-once, so the new value '" + shorten(v) + "' is skipped");
        continue;
      }
      Item item;
      item.kind = Item::Kind::param;
      item.key = k;
      item.text = std::move(v);
      s_->push(std::move(item));
    }
  } catch (const std::exception& e) {
    warn(std::string("log_config failed: ") + e.what());
  }
}

void MLflowLogger::log_metrics(const MetricValues& values, int64_t step) {
  try {
    std::lock_guard<std::mutex> lk(s_->mu);
    if (s_->finished) return;
    const int64_t t = now_ms();
    s_->last_step = step;
    for (const auto& [k, v] : values) {
      Item item;
      item.kind = Item::Kind::metric;
      item.key = s_->key(k);
      item.value = v;
      item.step = step;
      item.time_ms = t;
      s_->push(std::move(item));
    }
  } catch (const std::exception& e) {
    warn(std::string("log_metrics failed: ") + e.what());
  }
}

void MLflowLogger::log_summary(const MetricValues& values) {
  try {
    std::lock_guard<std::mutex> lk(s_->mu);
    if (s_->finished) return;
    const int64_t t = now_ms();
    for (const auto& [k, v] : values) {
      Item item;
      item.kind = Item::Kind::metric;
      item.key = s_->key("summary/" + k);
      item.value = v;
      item.step = s_->last_step;
      item.time_ms = t;
      s_->push(std::move(item));
    }
  } catch (const std::exception& e) {
    warn(std::string("log_summary failed: ") + e.what());
  }
}

void MLflowLogger::flush() {
  try {
    s_->worker->flush_soon();
  } catch (const std::exception& e) {
    warn(std::string("flush failed: ") + e.what());
  }
}

void MLflowLogger::finish(bool success) {
  try {
    end_run(success ? "FINISHED" : "FAILED");
  } catch (const std::exception& e) {
    warn(std::string("finish failed: ") + e.what());
  }
}

void MLflowLogger::end_run(const std::string& status) {
  {
    std::lock_guard<std::mutex> lk(s_->mu);
    if (s_->finished) return;
    s_->finished = true;
    Item item;
    item.kind = Item::Kind::end;
    item.text = status;
    item.time_ms = now_ms();
    s_->push(std::move(item));
  }
  s_->worker->flush_soon();
  s_->worker->stop(true);
  if (const size_t n = s_->session->spooled(); n > 0)
    warn("run ended with " + std::to_string(n) + " undelivered requests in " + s_->session->config().spool_path);
}

const MLflowOptions& MLflowLogger::options() const { return s_->opt; }

std::string MLflowLogger::run_id() const { return s_->session->run_id(); }

std::string MLflowLogger::experiment_id() const { return s_->session->experiment_id(); }

const std::string& MLflowLogger::spool_path() const { return s_->session->config().spool_path; }

size_t MLflowLogger::spooled_requests() const { return s_->session->spooled(); }

}  // namespace zae::io
