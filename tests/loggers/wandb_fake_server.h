// A fake W&B server for the W&B logger and zae-wandb-sync tests: an HttpTestServer that
// speaks the two endpoints (GraphQL UpsertBucket, file_stream) the way the real server
// does and keeps the run's state, so tests can assert on what a user would see:
//   - history lines are placed at their offsets (the same offset again replaces a line;
//     an offset past the end is a gap: answered 400 and recorded as a violation);
//   - historyLineCount = lines held (set_base_lines fakes a run that exists already);
//   - the summary is the last wandb-summary.json content; complete/exitcode are recorded;
//   - fail(status) answers every request with that status (fail_streams_after(n): file_stream
//     only, after n more accepted ones); stop_run() adds
//     "stopped": true to file_stream replies.
// Invariants: the state is guarded by one mutex (the handler runs on the server thread);
// the HttpTestServer member is declared last, so its thread stops before the state goes.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/state_json.h"
#include "support/http_test_server.h"

namespace zae::test {

class FakeWandB {
 public:
  FakeWandB() : server_([this](const RecordedRequest& r) { return handle(r); }) {}

  std::string url() const { return server_.url(); }
  HttpTestServer& server() { return server_; }

  void fail(int status) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = status;
  }
  /// Every answer waits this long first (a slow server).
  void delay(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = d;
  }
  /// After `n` more accepted file_stream requests, answer 500 to file_stream (-1: never).
  void fail_streams_after(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_left_ = n;
  }
  void stop_run(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    stop_run_ = on;
  }
  void set_base_lines(int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    history_.assign(static_cast<size_t>(n), "{\"_step\":-1}");
  }

  std::vector<std::string> history() const {
    std::lock_guard<std::mutex> lock(mu_);
    return history_;
  }
  std::string summary() const {
    std::lock_guard<std::mutex> lock(mu_);
    return summary_;
  }
  std::optional<int> exitcode() const {
    std::lock_guard<std::mutex> lock(mu_);
    return exitcode_;
  }
  int completes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return completes_;
  }
  int replaced_lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return replaced_;
  }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }

  /// The requests to one endpoint, in order ("/graphql" or "file_stream").
  std::vector<RecordedRequest> requests_to(const std::string& endpoint) const {
    std::vector<RecordedRequest> out;
    for (auto& r : server_.requests())
      if (endpoint == "/graphql" ? r.path() == "/graphql" : r.path().find("/file_stream") != std::string::npos)
        out.push_back(r);
    return out;
  }
  /// UpsertBucket's variables, per call.
  std::vector<io::json::Value> upserts() const {
    std::vector<io::json::Value> out;
    for (auto& r : requests_to("/graphql")) {
      io::json::Value body = io::json::parse(r.body, "upsert body");
      const io::json::Value* vars = body.find("variables");
      out.push_back(vars != nullptr ? *vars : io::json::Value());
    }
    return out;
  }
  /// Every file_stream body, parsed.
  std::vector<io::json::Value> streams() const {
    std::vector<io::json::Value> out;
    for (auto& r : requests_to("file_stream")) out.push_back(io::json::parse(r.body, "file_stream body"));
    return out;
  }
  bool wait_history(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    return poll_until([&] { return history().size() >= n; }, timeout);
  }
  /// Polls `pred` every 2 ms (the state changes after a request is recorded, so the
  /// server's own wait_for cannot see it).
  template <class Pred>
  static bool poll_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

 private:
  static std::string str(const io::json::Value* v, const std::string& fallback) {
    return v != nullptr && v->kind == io::json::Kind::string ? v->text : fallback;
  }

  CannedResponse handle(const RecordedRequest& r) {
    std::chrono::milliseconds d;
    {
      std::lock_guard<std::mutex> lock(mu_);
      d = delay_;
    }
    std::this_thread::sleep_for(d);
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_ != 0) return {fail_, "{\"error\":\"injected failure\"}"};
    if (r.method != "POST") return {405, "{}"};
    io::json::Value body = io::json::parse(r.body, "request body");
    if (r.path() == "/graphql") {
      const io::json::Value* vars = body.find("variables");
      ++upsert_count_;
      const std::string name = str(vars ? vars->find("name") : nullptr, "");
      const std::string project = str(vars ? vars->find("project") : nullptr, "uncategorized");
      const std::string entity = str(vars ? vars->find("entity") : nullptr, "default-entity");
      std::string reply = "{\"data\":{\"upsertBucket\":{\"bucket\":{\"id\":\"UnVuOnYxOnRlc3Q=\",\"name\":" +
                          io::json::quote(name) + ",\"displayName\":\"shown\",\"historyLineCount\":" +
                          std::to_string(history_.size()) + ",\"project\":{\"name\":" + io::json::quote(project) +
                          ",\"entity\":{\"name\":" + io::json::quote(entity) + "}}},\"inserted\":true}}}";
      return {200, reply};
    }
    if (r.path().find("/file_stream") == std::string::npos) return {404, "{}"};
    if (streams_left_ == 0) return {500, "{\"error\":\"injected file_stream failure\"}"};
    if (streams_left_ > 0) --streams_left_;
    if (const io::json::Value* files = body.find("files")) {
      if (const io::json::Value* h = files->find("wandb-history.jsonl")) {
        const int64_t offset = io::state::get_int(*h, "offset", "history");
        const auto& content = io::state::get(*h, "content", "history").items;
        if (offset > static_cast<int64_t>(history_.size())) {
          violations_.push_back("gap: offset " + std::to_string(offset) + " with " + std::to_string(history_.size()) +
                                " lines held");
          return {400, "{\"error\":\"offset past the end\"}"};
        }
        for (size_t i = 0; i < content.size(); ++i) {
          const size_t at = static_cast<size_t>(offset) + i;
          if (at < history_.size()) {
            history_[at] = content[i].text;
            ++replaced_;
          } else {
            history_.push_back(content[i].text);
          }
        }
      }
      if (const io::json::Value* s = files->find("wandb-summary.json")) {
        if (io::state::get_int(*s, "offset", "summary") != 0) violations_.push_back("summary offset != 0");
        summary_ = io::state::get(*s, "content", "summary").items.at(0).text;
      }
    }
    if (const io::json::Value* c = body.find("complete"); c != nullptr && c->boolean) {
      ++completes_;
      exitcode_ = static_cast<int>(io::state::get_int(body, "exitcode", "final request"));
    }
    return {200, stop_run_ ? "{\"exitcode\":null,\"limits\":{},\"stopped\":true}" : "{\"exitcode\":null,\"limits\":{}}"};
  }

  mutable std::mutex mu_;
  int fail_ = 0;
  std::chrono::milliseconds delay_{0};
  int streams_left_ = -1;
  bool stop_run_ = false;
  int upsert_count_ = 0;
  std::vector<std::string> history_;
  std::string summary_;
  std::optional<int> exitcode_;
  int completes_ = 0;
  int replaced_ = 0;
  std::vector<std::string> violations_;
  HttpTestServer server_;  // last: stops before the state above is destroyed
};

}  // namespace zae::test
