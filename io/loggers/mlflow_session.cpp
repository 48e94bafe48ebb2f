// MLflow run session on the logger's worker thread (io/loggers/mlflow_session.h):
// experiment and run setup, log-batch / update requests, and the spool.
#include "io/loggers/mlflow_session.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <utility>

namespace zae::io::mlflow {

namespace {

void warn(const std::string& what) { std::fprintf(stderr, "zae: warning: mlflow: %s\n", what.c_str()); }

std::string shorten(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

/// `body` parsed, or a null Value when it is not JSON.
json::Value parse_or_null(const std::string& body) {
  try {
    return json::parse(body, "mlflow reply");
  } catch (const std::exception&) {
    return json::Value();
  }
}

/// The string at the path `keys` inside `v`, or "".
std::string string_at(const json::Value& v, std::initializer_list<const char*> keys) {
  const json::Value* cur = &v;
  for (const char* k : keys) {
    if (cur->kind != json::Kind::object) return "";
    cur = cur->find(k);
    if (cur == nullptr) return "";
  }
  return cur->kind == json::Kind::string ? cur->text : "";
}

std::string request_line(const std::string& endpoint, const std::string& body, const std::string& why) {
  return "{\"type\":\"request\",\"endpoint\":" + json::quote(endpoint) + ",\"body\":" + body +
         ",\"error\":" + json::quote(why) + "}\n";
}

}  // namespace

/// Undelivered items up to a runs/update: one or more log-batch requests, with the seq of
/// each item so that the ones a successful request carried can be marked delivered.
struct Session::Segment {
  LogBatch batch;
  std::vector<uint64_t> metric_seqs, param_seqs, tag_seqs;
  void add(const Item& it) {
    switch (it.kind) {
      case Item::Kind::metric:
        batch.metrics.push_back({it.key, it.value, it.time_ms, it.step});
        metric_seqs.push_back(it.seq);
        break;
      case Item::Kind::param:
        batch.params.push_back({it.key, it.text});
        param_seqs.push_back(it.seq);
        break;
      case Item::Kind::tag:
        batch.tags.push_back({it.key, it.text});
        tag_seqs.push_back(it.seq);
        break;
      default: break;
    }
  }
  void clear() { *this = Segment{}; }
};

Session::Session(SessionConfig config)
    : c_(std::move(config)), api_(c_.tracking_uri + "/api/2.0/mlflow/"),
      http_(std::make_unique<HttpClient>(c_.request_timeout)) {}

std::string Session::run_id() const {
  std::lock_guard<std::mutex> lk(ids_mu_);
  return run_id_;
}

std::string Session::experiment_id() const {
  std::lock_guard<std::mutex> lk(ids_mu_);
  return experiment_id_;
}

std::string Session::get_experiment(bool& missing) {
  missing = false;
  const HttpResponse r =
      http_->get(api_ + "experiments/get-by-name?experiment_name=" + url_encode(c_.experiment_name), c_.headers);
  if (!r.ok()) {
    missing = r.status == 404 || error_code(r.body) == "RESOURCE_DOES_NOT_EXIST";
    return "experiments/get-by-name: " + r.describe();
  }
  const json::Value v = parse_or_null(r.body);
  const std::string id = string_at(v, {"experiment", "experiment_id"});
  if (id.empty()) return "experiments/get-by-name: reply without experiment.experiment_id: " + shorten(r.body, 200);
  if (string_at(v, {"experiment", "lifecycle_stage"}) == "deleted")
    return "experiment '" + c_.experiment_name + "' (id " + id + ") is deleted on " + c_.tracking_uri +
           ": restore it (`mlflow experiments restore`) or choose another name";
  std::lock_guard<std::mutex> lk(ids_mu_);
  experiment_id_ = id;
  return "";
}

std::string Session::ensure_run() {
  if (!run_id_.empty()) return "";
  if (experiment_id_.empty()) {
    bool missing = false;
    std::string err = get_experiment(missing);
    if (!err.empty() && !missing) return err;
    if (missing) {
      const HttpResponse c = http_->post(api_ + "experiments/create", create_experiment_body(c_.experiment_name),
                                         c_.headers);
      if (c.ok()) {
        const std::string id = string_at(parse_or_null(c.body), {"experiment_id"});
        if (id.empty()) return "experiments/create: reply without experiment_id: " + shorten(c.body, 200);
        std::lock_guard<std::mutex> lk(ids_mu_);
        experiment_id_ = id;
      } else if (error_code(c.body) == "RESOURCE_ALREADY_EXISTS") {
        // Another process created it between our lookup and our create: look it up again.
        if (!(err = get_experiment(missing)).empty()) return err;
      } else {
        return "experiments/create: " + c.describe();
      }
    }
  }
  const HttpResponse r = http_->post(
      api_ + "runs/create", create_run_body(experiment_id_, c_.start_ms, c_.run_name, c_.run_tags), c_.headers);
  if (!r.ok()) return "runs/create: " + r.describe();
  const json::Value v = parse_or_null(r.body);
  std::string id = string_at(v, {"run", "info", "run_id"});
  if (id.empty()) id = string_at(v, {"run", "info", "run_uuid"});  // servers before MLflow 1.x's run_id
  if (id.empty()) return "runs/create: reply without run.info.run_id: " + shorten(r.body, 200);
  std::lock_guard<std::mutex> lk(ids_mu_);
  run_id_ = id;
  return "";
}

std::string Session::post(const std::string& endpoint, const std::string& body) {
  const HttpResponse r = http_->post(api_ + endpoint, body, c_.headers);
  return r.ok() ? "" : endpoint + ": " + r.describe();
}

std::string Session::post_segment(const Segment& seg) {
  if (seg.batch.empty()) return "";
  size_t mi = 0, pi = 0, ti = 0;
  for (const LogBatch& chunk : split_batch(seg.batch)) {
    std::string err = post("runs/log-batch", log_batch_body(run_id_, chunk));
    if (!err.empty()) return err;
    for (size_t i = 0; i < chunk.metrics.size(); ++i) delivered_.insert(seg.metric_seqs[mi++]);
    for (size_t i = 0; i < chunk.params.size(); ++i) delivered_.insert(seg.param_seqs[pi++]);
    for (size_t i = 0; i < chunk.tags.size(); ++i) delivered_.insert(seg.tag_seqs[ti++]);
  }
  return "";
}

std::string Session::send(const std::vector<Item>& batch) {
  std::string err = ensure_run();
  if (!err.empty()) return err;
  Segment seg;
  for (const Item& it : batch) {
    if (delivered_.count(it.seq) != 0) continue;
    if (it.kind != Item::Kind::end) {
      seg.add(it);
      continue;
    }
    if (!(err = post_segment(seg)).empty()) return err;
    seg.clear();
    if (!(err = post("runs/update", update_run_body(run_id_, it.text, it.time_ms))).empty()) return err;
    delivered_.insert(it.seq);
  }
  if (!(err = post_segment(seg)).empty()) return err;
  for (const Item& it : batch) delivered_.erase(it.seq);
  return "";
}

void Session::give_up(const std::vector<Item>& batch, const std::string& why) {
  if (!reported_) {
    reported_ = true;
    warn("cannot deliver to " + c_.tracking_uri + " (" + shorten(why, 300) +
         "); training goes on, undeliverable requests go to " + c_.spool_path +
         " (further failures are not reported)");
  }
  std::vector<std::string> lines;
  Segment seg;
  auto flush_seg = [&] {
    for (const LogBatch& chunk : split_batch(seg.batch))
      lines.push_back(request_line("runs/log-batch", log_batch_body(run_id_, chunk), why));
    seg.clear();
  };
  for (const Item& it : batch) {
    if (delivered_.count(it.seq) != 0) continue;
    if (it.kind != Item::Kind::end) {
      seg.add(it);
      continue;
    }
    flush_seg();
    // The run's end is tried once more on its own: a server that refuses only the
    // metrics must not leave the run RUNNING forever.
    const std::string body = update_run_body(run_id_, it.text, it.time_ms);
    if (!run_id_.empty() && post("runs/update", body).empty()) continue;
    lines.push_back(request_line("runs/update", body, why));
  }
  flush_seg();
  for (const Item& it : batch) delivered_.erase(it.seq);
  if (!lines.empty()) write_spool(lines);
}

std::string Session::header_line() const {
  std::string tags = "[";
  for (size_t i = 0; i < c_.run_tags.size(); ++i) {
    if (i) tags += ',';
    tags += "{\"key\":" + json::quote(c_.run_tags[i].key) + ",\"value\":" + json::quote(c_.run_tags[i].value) + "}";
  }
  tags += "]";
  return "{\"type\":\"run\",\"tracking_uri\":" + json::quote(c_.tracking_uri) +
         ",\"experiment_name\":" + json::quote(c_.experiment_name) + ",\"experiment_id\":" +
         json::quote(experiment_id_) + ",\"run_id\":" + json::quote(run_id_) + ",\"run_name\":" +
         json::quote(c_.run_name) + ",\"start_time\":" + std::to_string(c_.start_ms) + ",\"tags\":" + tags + "}\n";
}

void Session::write_spool(const std::vector<std::string>& lines) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(c_.spool_path).parent_path(), ec);
  std::ofstream out(c_.spool_path, std::ios::binary | std::ios::app);
  if (out && !spool_started_) out << header_line();
  for (const std::string& l : lines) out << l;
  out.flush();
  if (!out) {
    if (!spool_broken_)
      warn("cannot write the spool file " + c_.spool_path + " (" + (ec ? ec.message() : std::string("write failed")) +
           "); " + std::to_string(lines.size()) + " requests are lost (later losses are not reported)");
    spool_broken_ = true;
    return;
  }
  spool_started_ = true;
  spooled_ += lines.size();
}

}  // namespace zae::io::mlflow
