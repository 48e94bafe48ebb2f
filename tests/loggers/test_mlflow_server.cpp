// MLflowLogger against a real MLflow tracking server (`mlflow server`, pip's mlflow),
// started by the test on 127.0.0.1 with a temporary SQLite store and read back through
// MLflow's own REST API (runs/get, metrics/get-history): the run exists and is FINISHED,
// its params equal the config, and every metric history equals what was logged, values
// and steps. Skips, saying why, where python3 cannot import mlflow.
// The server runs in its own session (setsid; its output goes to server.log), so TearDown ends it and every process it
// started (uvicorn, ...) with one signal to the group, and checks that none is left.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/http_client.h"
#include "io/json.h"
#include "io/loggers/mlflow_logger.h"
#include "support/child_process.h"
#include "support/temp_dir.h"

namespace zae::io {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// The absolute path of `name` on PATH, or "".
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string all = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find(':', start);
    if (end == std::string::npos) end = all.size();
    const std::string candidate = all.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

/// A port that was free a moment ago (bound to port 0 by the OS, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string tail(const std::string& s, size_t n = 2000) { return s.size() <= n ? s : s.substr(s.size() - n); }

const json::Value& member(const json::Value& v, const char* key) {
  static const json::Value null;
  const json::Value* m = v.kind == json::Kind::object ? v.find(key) : nullptr;
  return m != nullptr ? *m : null;
}

class MLflowServerTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    const std::string python = find_on_path("python3");
    if (python.empty()) GTEST_SKIP() << "no python3 on PATH: cannot run an MLflow server";
    for (const char* tool : {"/usr/bin/setsid", "/usr/bin/env", "/bin/sh"})
      if (::access(tool, X_OK) != 0)
        GTEST_SKIP() << tool << " is missing: cannot run an MLflow server in its own session";
    std::string exe;
    {
      test::ChildProcess probe({python, "-c", "import sys, mlflow; print(sys.executable)"}, true, path("probe.err"));
      ASSERT_TRUE(probe.error().empty()) << probe.error();
      const bool got = probe.read_line(exe, 120000);
      const int status = probe.wait();
      if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        GTEST_SKIP() << python << " cannot import mlflow (" << test::describe_wait_status(status)
                     << "; `pip install mlflow`, which scripts/setup.sh runs): " << tail(read(path("probe.err")), 300);
    }
    const int port = free_port();
    ASSERT_GT(port, 0) << "could not get a free port";
    url_ = "http://127.0.0.1:" + std::to_string(port);
    // The job runner (huey consumers) is not needed for tracking; leaving it off keeps the
    // server light on a 2-core machine.
    server_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"/usr/bin/setsid", "/bin/sh", "-c", "exec \"$@\" >> \"$0\" 2>&1", path("server.log"),
                                 "/usr/bin/env", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", exe, "-m", "mlflow",
                                 "server", "--host", "127.0.0.1", "--port", std::to_string(port),
                                 "--backend-store-uri", "sqlite:///" + path("mlflow.db"), "--default-artifact-root",
                                 path("artifacts"), "--workers", "1"},
        false);
    ASSERT_TRUE(server_->error().empty()) << server_->error();
    HttpClient http(2s);
    const auto deadline = Clock::now() + 90s;  // mlflow starts slowly (migrations, imports)
    for (;;) {
      if (server_->poll_exit())
        FAIL() << "mlflow server exited (" << test::describe_wait_status(server_->wait())
               << ") before answering; its log:\n" << tail(read(path("server.log")));
      if (http.get(url_ + "/health").ok()) break;
      if (Clock::now() > deadline)
        FAIL() << "mlflow server on " << url_ << " did not answer /health within 90 s; its log:\n"
               << tail(read(path("server.log")));
      std::this_thread::sleep_for(250ms);
    }
  }

  void TearDown() override {
    stop_server();
    TempDirTest::TearDown();
  }

  /// SIGTERM to the server's process group, SIGKILL after 20 s; checks nothing is left.
  void stop_server() {
    if (!server_) return;
    const pid_t group = server_->pid();
    auto group_gone = [&](std::chrono::seconds budget) {
      const auto until = Clock::now() + budget;
      for (;;) {
        server_->poll_exit();  // reap the leader (a zombie still counts as a member)
        if (::kill(-group, 0) != 0 && errno == ESRCH) return true;
        if (Clock::now() > until) return false;
        std::this_thread::sleep_for(100ms);
      }
    };
    if (group > 0) {
      ::kill(-group, SIGTERM);
      if (!group_gone(20s)) {
        ::kill(-group, SIGKILL);
        EXPECT_TRUE(group_gone(10s)) << "processes of the mlflow server (group " << group << ") are left";
      }
    }
    server_.reset();
  }

  /// GET {url}/api/2.0/mlflow/<endpoint_and_query>, parsed; a test failure when not 200.
  json::Value api_get(HttpClient& http, const std::string& endpoint_and_query) {
    const HttpResponse r = http.get(url_ + "/api/2.0/mlflow/" + endpoint_and_query);
    EXPECT_TRUE(r.ok()) << endpoint_and_query << ": " << r.describe();
    return r.ok() ? json::parse(r.body, endpoint_and_query) : json::Value();
  }

  std::string url_;
  std::unique_ptr<test::ChildProcess> server_;
};

TEST_F(MLflowServerTest, LoggedRunReadsBackThroughMlflowsOwnApi) {
  MLflowOptions o;
  o.tracking_uri = url_;
  o.experiment_name = "zae interop";
  o.run_name = "interop-run";
  o.tags = {{"suite", "interop"}};
  o.send_interval = 100ms;
  o.spool_dir = path("spool");
  o.min_backoff = 100ms;
  o.max_backoff = 1s;
  auto logger = std::make_unique<MLflowLogger>(o);

  logger->log_config(json::parse(
      R"({"optimizer":{"name":"adamw","lr":0.001,"weight_decay":0.01},"model":{"hidden":[64,32]},"epochs":2})",
      "config"));
  std::map<std::string, std::vector<std::pair<int64_t, double>>> want;
  for (int64_t step = 1; step <= 20; ++step) {
    const double s = static_cast<double>(step);
    const MetricValues v = {{"train/loss", 1.0 / s + 0.1}, {"train/accuracy", 1.0 - 1.0 / (s + 1.0)},
                            {"lr", 0.001 * std::pow(0.9, s)}};
    logger->log_metrics(v, step);
    for (const auto& [k, x] : v) want[k].emplace_back(step, x);
    if (step == 10) logger->flush();
  }
  logger->log_summary({{"best_accuracy", 1.0 - 1.0 / 21.0}});
  logger->finish(true);
  const std::string run_id = logger->run_id();
  ASSERT_FALSE(run_id.empty()) << "the run was never created";
  EXPECT_EQ(logger->spooled_requests(), 0u) << "requests were spooled to " << logger->spool_path();

  HttpClient http(10s);
  const json::Value exp = api_get(http, "experiments/get-by-name?experiment_name=" + url_encode("zae interop"));
  EXPECT_EQ(member(member(exp, "experiment"), "experiment_id").text, logger->experiment_id());

  const json::Value got = api_get(http, "runs/get?run_id=" + run_id);
  const json::Value& info = member(member(got, "run"), "info");
  const json::Value& data = member(member(got, "run"), "data");
  EXPECT_EQ(member(info, "status").text, "FINISHED");
  EXPECT_EQ(member(info, "run_name").text, "interop-run");
  EXPECT_EQ(member(info, "experiment_id").text, logger->experiment_id());
  EXPECT_LE(std::stoll(member(info, "start_time").text), std::stoll(member(info, "end_time").text));

  std::map<std::string, std::string> params, tags;
  for (const json::Value& p : member(data, "params").items) params[member(p, "key").text] = member(p, "value").text;
  for (const json::Value& t : member(data, "tags").items) tags[member(t, "key").text] = member(t, "value").text;
  const std::map<std::string, std::string> want_params = {{"optimizer.name", "adamw"},
                                                          {"optimizer.lr", "0.001"},
                                                          {"optimizer.weight_decay", "0.01"},
                                                          {"model.hidden", "[64,32]"},
                                                          {"epochs", "2"}};
  EXPECT_EQ(params, want_params);
  EXPECT_EQ(tags["suite"], "interop");
  EXPECT_EQ(tags["mlflow.runName"], "interop-run");
  EXPECT_NE(tags["mlflow.source.name"].find("test_mlflow_server"), std::string::npos);

  want["summary/best_accuracy"] = {{20, 1.0 - 1.0 / 21.0}};
  for (const auto& [key, points] : want) {
    const json::Value h = api_get(http, "metrics/get-history?run_id=" + run_id + "&metric_key=" + url_encode(key));
    std::vector<std::pair<int64_t, double>> history;
    for (const json::Value& m : member(h, "metrics").items)
      history.emplace_back(std::stoll(member(m, "step").text), std::strtod(member(m, "value").text.c_str(), nullptr));
    std::sort(history.begin(), history.end());
    EXPECT_EQ(history, points) << key;
  }
  logger.reset();
}

}  // namespace
}  // namespace zae::io
