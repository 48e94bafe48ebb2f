// MLflowLogger against a fake MLflow tracking server (HttpTestServer): the request
// sequence and bodies (experiment lookup / create / create race, run create, log-batch
// contents and splits, params, summary, update FINISHED / FAILED / KILLED), retries that
// never duplicate, a server that is down or failing (log_* returns at once, nothing
// throws, the spool holds every undelivered request), option validation, and the pure
// protocol helpers (io/loggers/mlflow_protocol.h).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "engine/error.h"
#include "io/json.h"
#include "io/loggers/mlflow_logger.h"
#include "io/loggers/mlflow_protocol.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"

namespace zae::io {
namespace {

using test::CannedResponse;
using test::HttpTestServer;
using test::RecordedRequest;
using namespace std::chrono_literals;

const std::string kApi = "/api/2.0/mlflow/";

/// prefix + i (spelled out: GCC 12 warns falsely about "literal" + std::to_string(i)).
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double to_double(const json::Value& v) {
  if (v.kind == json::Kind::string) {
    if (v.text == "NaN") return std::nan("");
    if (v.text == "Infinity") return INFINITY;
    if (v.text == "-Infinity") return -INFINITY;
  }
  EXPECT_EQ(v.kind, json::Kind::number) << json::dump(v);
  return std::strtod(v.text.c_str(), nullptr);
}
int64_t to_int(const json::Value& v) {
  EXPECT_EQ(v.kind, json::Kind::number) << json::dump(v);
  return std::strtoll(v.text.c_str(), nullptr, 10);
}
std::string str(const json::Value& v, const char* key) {
  const json::Value* m = v.find(key);
  return m != nullptr && m->kind == json::Kind::string ? m->text : "<missing " + std::string(key) + ">";
}

struct Metric {
  std::string key;
  double value;
  int64_t timestamp, step;
};

/// A fake MLflow server's state; the handler runs on the server thread.
struct FakeMlflow {
  std::mutex mu;
  bool experiment_exists = false;
  std::string experiment_id = "7";
  int create_conflicts = 0;          ///< experiments/create answers RESOURCE_ALREADY_EXISTS (it then exists)
  std::set<int> failing_batches;     ///< 1-based log-batch calls answered 503
  bool fail_all_batches = false;
  int batch_calls = 0;

  CannedResponse operator()(const RecordedRequest& r) {
    std::lock_guard<std::mutex> lk(mu);
    const std::string p = r.path();
    if (p == kApi + "experiments/get-by-name") {
      if (!experiment_exists)
        return {404, R"({"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Could not find experiment"})"};
      return {200, R"({"experiment":{"experiment_id":")" + experiment_id + R"(","lifecycle_stage":"active"}})"};
    }
    if (p == kApi + "experiments/create") {
      if (create_conflicts > 0) {
        --create_conflicts;
        experiment_exists = true;
        return {400, R"({"error_code":"RESOURCE_ALREADY_EXISTS","message":"already exists"})"};
      }
      experiment_exists = true;
      return {200, R"({"experiment_id":")" + experiment_id + R"("})"};
    }
    if (p == kApi + "runs/create") return {200, R"({"run":{"info":{"run_id":"run-abc","status":"RUNNING"}}})"};
    if (p == kApi + "runs/log-batch") {
      ++batch_calls;
      if (fail_all_batches || failing_batches.count(batch_calls))
        return {503, R"({"error_code":"TEMPORARILY_UNAVAILABLE","message":"busy"})"};
      return {200, "{}"};
    }
    if (p == kApi + "runs/update") return {200, R"({"run_info":{}})"};
    return {404, R"({"error_code":"ENDPOINT_NOT_FOUND"})"};
  }
};

class MLflowLoggerTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fake_ = std::make_shared<FakeMlflow>();
    auto f = fake_;
    server_ = std::make_unique<HttpTestServer>([f](const RecordedRequest& r) { return (*f)(r); });
  }

  MLflowOptions options() const {
    MLflowOptions o;
    o.tracking_uri = server_->url();
    o.experiment_name = "exp one";
    o.run_name = "run-1";
    o.send_interval = 20ms;
    o.min_backoff = 5ms;
    o.max_backoff = 20ms;
    o.max_attempts = 3;
    o.drain_timeout = 3s;
    o.request_timeout = 2s;
    o.spool_dir = path("spool");
    return o;
  }

  /// The parsed body of every request to `endpoint` whose answer was 2xx (failing
  /// log-batch calls are told apart by counting, as the fake numbers them).
  std::vector<json::Value> bodies(const std::string& endpoint) const {
    std::vector<json::Value> out;
    for (const RecordedRequest& r : server_->requests())
      if (r.path() == kApi + endpoint) out.push_back(json::parse(r.body, endpoint));
    return out;
  }
  /// Metrics of the log-batch requests, skipping the 1-based calls in `failed`.
  std::vector<Metric> delivered_metrics(const std::set<int>& failed = {}) const {
    std::vector<Metric> out;
    int call = 0;
    for (const json::Value& b : bodies("runs/log-batch")) {
      if (failed.count(++call)) continue;
      EXPECT_EQ(str(b, "run_id"), "run-abc");
      for (const json::Value& m : b.find("metrics")->items)
        out.push_back({str(m, "key"), to_double(*m.find("value")), to_int(*m.find("timestamp")),
                       to_int(*m.find("step"))});
    }
    return out;
  }
  std::vector<std::pair<std::string, std::string>> delivered_params() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const json::Value& b : bodies("runs/log-batch"))
      for (const json::Value& p : b.find("params")->items) out.emplace_back(str(p, "key"), str(p, "value"));
    return out;
  }
  std::vector<std::string> paths() const {
    std::vector<std::string> out;
    for (const RecordedRequest& r : server_->requests()) out.push_back(r.method + " " + r.path().substr(kApi.size()));
    return out;
  }

  std::shared_ptr<FakeMlflow> fake_;
  std::unique_ptr<HttpTestServer> server_;
};

TEST_F(MLflowLoggerTest, CreatesExperimentAndRunLogsAndFinishes) {
  const int64_t t0 = now_ms();
  MLflowOptions o = options();
  o.tags = {{"team", "vision"}};
  MLflowLogger logger(o);
  EXPECT_EQ(logger.name(), "mlflow");
  json::Value config = json::parse(R"({"optimizer":{"name":"adamw","lr":0.001,"betas":[0.9,0.999]},"epochs":3,)"
                                   R"("amp":false})",
                                   "config");
  logger.log_config(config);
  for (int64_t step = 1; step <= 5; ++step)
    logger.log_metrics({{"train/loss", 1.0 / static_cast<double>(step)}, {"lr", 0.001 * static_cast<double>(step)}},
                       step);
  logger.log_summary({{"best_loss", 0.2}});
  logger.finish(true);
  const int64_t t1 = now_ms();

  const std::vector<std::string> seq = paths();
  ASSERT_GE(seq.size(), 5u);
  EXPECT_EQ(seq[0], "GET experiments/get-by-name");
  EXPECT_EQ(seq[1], "POST experiments/create");
  EXPECT_EQ(seq[2], "POST runs/create");
  EXPECT_EQ(seq.back(), "POST runs/update");
  for (size_t i = 3; i + 1 < seq.size(); ++i) EXPECT_EQ(seq[i], "POST runs/log-batch");
  const auto reqs = server_->requests();
  EXPECT_EQ(reqs[0].target, kApi + "experiments/get-by-name?experiment_name=exp%20one");
  EXPECT_EQ(str(json::parse(reqs[1].body, "create"), "name"), "exp one");
  EXPECT_NE(reqs[2].header("content-type").find("application/json"), std::string::npos);

  const json::Value run = json::parse(reqs[2].body, "runs/create");
  EXPECT_EQ(str(run, "experiment_id"), "7");
  EXPECT_EQ(str(run, "run_name"), "run-1");
  const int64_t start = to_int(*run.find("start_time"));
  EXPECT_GE(start, t0);
  EXPECT_LE(start, t1);
  std::map<std::string, std::string> tags;
  for (const json::Value& t : run.find("tags")->items) tags[str(t, "key")] = str(t, "value");
  EXPECT_EQ(tags["team"], "vision");
  EXPECT_EQ(tags["mlflow.runName"], "run-1");
  EXPECT_NE(tags["mlflow.source.name"].find("test_mlflow_logger"), std::string::npos) << tags["mlflow.source.name"];
  EXPECT_EQ(tags["mlflow.source.type"], "LOCAL");

  const std::vector<Metric> metrics = delivered_metrics();
  ASSERT_EQ(metrics.size(), 11u);
  std::map<std::pair<std::string, int64_t>, double> got;
  for (const Metric& m : metrics) {
    EXPECT_GE(m.timestamp, t0);
    EXPECT_LE(m.timestamp, t1);
    got[{m.key, m.step}] = m.value;
  }
  for (int64_t step = 1; step <= 5; ++step) {
    EXPECT_EQ((got[{"train/loss", step}]), 1.0 / static_cast<double>(step));
    EXPECT_EQ((got[{"lr", step}]), 0.001 * static_cast<double>(step));
  }
  EXPECT_EQ((got[{"summary/best_loss", 5}]), 0.2);

  auto params = delivered_params();
  std::sort(params.begin(), params.end());
  const std::vector<std::pair<std::string, std::string>> want = {{"amp", "false"},
                                                                 {"epochs", "3"},
                                                                 {"optimizer.betas", "[0.9,0.999]"},
                                                                 {"optimizer.lr", "0.001"},
                                                                 {"optimizer.name", "adamw"}};
  EXPECT_EQ(params, want);

  const json::Value update = json::parse(reqs.back().body, "runs/update");
  EXPECT_EQ(str(update, "run_id"), "run-abc");
  EXPECT_EQ(str(update, "status"), "FINISHED");
  EXPECT_GE(to_int(*update.find("end_time")), start);
  EXPECT_LE(to_int(*update.find("end_time")), now_ms());
  EXPECT_EQ(logger.run_id(), "run-abc");
  EXPECT_EQ(logger.experiment_id(), "7");
  EXPECT_EQ(logger.spooled_requests(), 0u);
  EXPECT_FALSE(std::filesystem::exists(logger.spool_path()));

  // finish is once: later calls change nothing.
  logger.log_metrics({{"late", 1}}, 6);
  logger.finish(false);
  EXPECT_EQ(server_->requests().size(), reqs.size());
}

TEST_F(MLflowLoggerTest, ExistingExperimentIsReusedAndTheRunIsCreatedAtOnce) {
  fake_->experiment_exists = true;
  fake_->experiment_id = "3";
  MLflowOptions o = options();
  o.send_interval = 60s;  // nothing logged: the run is created anyway, before any send interval
  MLflowLogger logger(o);
  ASSERT_TRUE(server_->wait_for([](const auto& r) { return r.size() >= 2; }, 5s));
  logger.finish(false);
  EXPECT_EQ(paths(), (std::vector<std::string>{"GET experiments/get-by-name", "POST runs/create", "POST runs/update"}));
  EXPECT_EQ(str(bodies("runs/create")[0], "experiment_id"), "3");
  EXPECT_EQ(str(bodies("runs/update")[0], "status"), "FAILED");
}

TEST_F(MLflowLoggerTest, ConcurrentExperimentCreateLooksUpAgain) {
  fake_->create_conflicts = 1;
  fake_->experiment_id = "5";
  MLflowLogger logger(options());
  logger.finish(true);
  EXPECT_EQ(paths(), (std::vector<std::string>{"GET experiments/get-by-name", "POST experiments/create",
                                               "GET experiments/get-by-name", "POST runs/create", "POST runs/update"}));
  EXPECT_EQ(str(bodies("runs/create")[0], "experiment_id"), "5");
}

TEST_F(MLflowLoggerTest, DestroyedWithoutFinishEndsTheRunAsKilled) {
  { MLflowLogger logger(options()); }
  const auto updates = bodies("runs/update");
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(str(updates[0], "status"), "KILLED");
}

TEST_F(MLflowLoggerTest, SplitsAtMlflowLimitsAndNeverResendsAfterAPartialFailure) {
  fake_->failing_batches = {2};  // the second log-batch request fails once, then is retried
  MLflowOptions o = options();
  o.send_interval = 60s;  // everything goes in the one drain at finish
  MLflowLogger logger(o);
  json::Value config = json::Value::make_object();
  for (int i = 0; i < 250; ++i) config.members.emplace_back(numbered("p", i), json::Value::make_int(i));
  logger.log_config(config);
  for (int64_t step = 0; step < 1250; ++step)
    logger.log_metrics({{"a", static_cast<double>(step)}, {"b", -static_cast<double>(step)}}, step);
  logger.finish(true);

  int call = 0;
  for (const json::Value& b : bodies("runs/log-batch")) {
    ++call;
    const size_t nm = b.find("metrics")->items.size(), np = b.find("params")->items.size(),
                 nt = b.find("tags")->items.size();
    EXPECT_LE(nm, 1000u) << "request " << call;
    EXPECT_LE(np, 100u) << "request " << call;
    EXPECT_LE(nt, 100u) << "request " << call;
    EXPECT_LE(nm + np + nt, 1000u) << "request " << call;
  }
  EXPECT_GE(call, 5);  // 2500 metrics + 250 params need at least 4 requests, plus the retry
  const std::vector<Metric> metrics = delivered_metrics({2});
  ASSERT_EQ(metrics.size(), 2500u);  // each exactly once: the retry did not resend earlier requests
  std::set<std::pair<std::string, int64_t>> seen;
  for (const Metric& m : metrics) {
    EXPECT_TRUE(seen.insert({m.key, m.step}).second) << m.key << "@" << m.step << " sent twice";
    EXPECT_EQ(m.value, m.key == "a" ? static_cast<double>(m.step) : -static_cast<double>(m.step));
  }
  // Params: the failed request may have carried some; count the successful ones.
  std::set<std::string> params;
  int c = 0;
  for (const json::Value& b : bodies("runs/log-batch")) {
    if (++c == 2) continue;
    for (const json::Value& p : b.find("params")->items) EXPECT_TRUE(params.insert(str(p, "key")).second);
  }
  EXPECT_EQ(params.size(), 250u);
  EXPECT_EQ(str(bodies("runs/update").back(), "status"), "FINISHED");
  EXPECT_EQ(logger.spooled_requests(), 0u);
}

TEST_F(MLflowLoggerTest, ParamsAreWriteOnceAndLongValuesTruncated) {
  MLflowLogger logger(options());
  logger.log_config(json::parse(R"({"lr":0.1,"name":"x"})", "c"));
  logger.flush();
  const std::string long_value(7000, 'v');
  json::Value second = json::parse(R"({"lr":0.2,"name":"x","new key!":1})", "c");
  second.members.emplace_back("long", json::Value::make_string(long_value));
  testing::internal::CaptureStderr();
  logger.log_config(second);
  logger.log_config(second);  // the warning is printed once
  const std::string err = testing::internal::GetCapturedStderr();
  logger.finish(true);

  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [k, v] : delivered_params()) params[k].push_back(v);
  EXPECT_EQ(params["lr"], std::vector<std::string>{"0.1"});
  EXPECT_EQ(params["name"], std::vector<std::string>{"x"});
  EXPECT_EQ(params["new key_"], std::vector<std::string>{"1"});  // '!' is not allowed in MLflow names
  ASSERT_EQ(params["long"].size(), 1u);
  EXPECT_LE(params["long"][0].size(), mlflow::kMaxParamValueLength);
  EXPECT_NE(params["long"][0].find("[truncated"), std::string::npos);
  EXPECT_EQ(params.size(), 4u);
  size_t warnings = 0;
  for (size_t at = err.find("write-once"); at != std::string::npos; at = err.find("write-once", at + 1)) ++warnings;
  EXPECT_EQ(warnings, 1u) << err;
}

TEST_F(MLflowLoggerTest, NonFiniteValuesAreSentAsProtobufJsonSpellsThem) {
  MLflowLogger logger(options());
  logger.log_metrics({{"nan", std::nan("")}, {"inf", INFINITY}, {"ninf", -INFINITY}}, 1);
  logger.finish(true);
  std::string all;
  for (const RecordedRequest& r : server_->requests()) all += r.body;
  EXPECT_NE(all.find(R"("value":"NaN")"), std::string::npos);
  EXPECT_NE(all.find(R"("value":"Infinity")"), std::string::npos);
  EXPECT_NE(all.find(R"("value":"-Infinity")"), std::string::npos);
}

/// Every line of the spool, parsed.
std::vector<json::Value> read_spool(const std::string& p) {
  std::vector<json::Value> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line, p));
  return out;
}

TEST_F(MLflowLoggerTest, ServerDownNeverBlocksNorThrowsAndEverythingIsSpooled) {
  MLflowOptions o = options();
  server_->stop();  // connections are refused from now on
  o.drain_timeout = 500ms;
  testing::internal::CaptureStderr();
  const auto t0 = std::chrono::steady_clock::now();
  auto logger = std::make_unique<MLflowLogger>(o);
  logger->log_config(json::parse(R"({"lr":0.5})", "c"));
  for (int64_t step = 0; step < 200; ++step)
    logger->log_metrics({{"x", static_cast<double>(step)}, {"y", 2.0 * static_cast<double>(step)}}, step);
  const auto logged = std::chrono::steady_clock::now();
  EXPECT_LT(logged - t0, 500ms) << "log_* must not wait for the network";
  EXPECT_NO_THROW(logger->flush());
  EXPECT_NO_THROW(logger->finish(true));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(std::chrono::steady_clock::now() - logged, 10s);
  EXPECT_NE(err.find("cannot deliver"), std::string::npos) << err;
  EXPECT_NE(err.find(logger->spool_path()), std::string::npos) << err;

  const std::vector<json::Value> lines = read_spool(logger->spool_path());
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(str(lines[0], "type"), "run");
  EXPECT_EQ(str(lines[0], "experiment_name"), "exp one");
  EXPECT_EQ(str(lines[0], "run_name"), "run-1");
  EXPECT_EQ(str(lines[0], "run_id"), "");  // never created: a replayer creates it from this line
  std::set<std::pair<std::string, int64_t>> metrics;
  std::vector<std::string> params;
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(str(lines[i], "type"), "request");
    EXPECT_NE(str(lines[i], "error"), "");
    const json::Value& body = *lines[i].find("body");
    EXPECT_EQ(str(body, "run_id"), "");
    if (str(lines[i], "endpoint") == "runs/log-batch") {
      for (const json::Value& m : body.find("metrics")->items) {
        EXPECT_TRUE(metrics.insert({str(m, "key"), to_int(*m.find("step"))}).second);
        EXPECT_EQ(to_double(*m.find("value")),
                  (str(m, "key") == "x" ? 1.0 : 2.0) * static_cast<double>(to_int(*m.find("step"))));
      }
      for (const json::Value& p : body.find("params")->items) params.push_back(str(p, "key") + "=" + str(p, "value"));
    }
  }
  EXPECT_EQ(metrics.size(), 400u);
  EXPECT_EQ(params, std::vector<std::string>{"lr=0.5"});
  EXPECT_EQ(str(lines.back(), "endpoint"), "runs/update");
  EXPECT_EQ(str(*lines.back().find("body"), "status"), "FINISHED");
  EXPECT_EQ(logger->spooled_requests(), lines.size() - 1);
  logger.reset();
}

TEST_F(MLflowLoggerTest, ServerErrorsAreRetriedThenSpooledWithTheRunId) {
  fake_->fail_all_batches = true;
  MLflowOptions o = options();
  MLflowLogger logger(o);
  for (int64_t step = 1; step <= 3; ++step) logger.log_metrics({{"loss", 0.5}}, step);
  testing::internal::CaptureStderr();
  logger.finish(true);
  testing::internal::GetCapturedStderr();
  int attempts = 0;
  for (const std::string& p : paths()) attempts += p == "POST runs/log-batch";
  EXPECT_GE(attempts, o.max_attempts);
  EXPECT_EQ(bodies("runs/update").size(), 1u);  // the update itself went through

  const std::vector<json::Value> lines = read_spool(logger.spool_path());
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(str(lines[0], "run_id"), "run-abc");
  EXPECT_EQ(str(lines[0], "experiment_id"), "7");
  size_t n = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(str(lines[i], "endpoint"), "runs/log-batch");
    EXPECT_NE(str(lines[i], "error").find("503"), std::string::npos) << str(lines[i], "error");
    EXPECT_EQ(str(*lines[i].find("body"), "run_id"), "run-abc");
    n += lines[i].find("body")->find("metrics")->items.size();
  }
  EXPECT_EQ(n, 3u);
}

TEST_F(MLflowLoggerTest, ATransientErrorIsRetriedAndDeliveredOnce) {
  fake_->failing_batches = {1};
  MLflowLogger logger(options());
  logger.log_metrics({{"loss", 0.25}}, 10);
  logger.finish(true);
  const std::vector<Metric> m = delivered_metrics({1});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].value, 0.25);
  EXPECT_EQ(m[0].step, 10);
  EXPECT_FALSE(std::filesystem::exists(logger.spool_path()));
}

/// Sets an environment variable for the scope, restoring the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    had_ = std::getenv(name) != nullptr;
    if (value != nullptr)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_.c_str(), old_.c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

TEST_F(MLflowLoggerTest, EnvironmentGivesTheServerTheExperimentAndTheToken) {
  ScopedEnv uri("MLFLOW_TRACKING_URI", (server_->url() + "/").c_str());
  ScopedEnv exp("MLFLOW_EXPERIMENT_NAME", "from-env");
  ScopedEnv token("MLFLOW_TRACKING_TOKEN", "s3cret-token");
  MLflowOptions o = options();
  o.tracking_uri.clear();
  o.experiment_name.clear();
  MLflowLogger logger(o);
  EXPECT_EQ(logger.options().tracking_uri, server_->url());
  EXPECT_EQ(logger.options().experiment_name, "from-env");
  logger.finish(true);
  const auto reqs = server_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0].target, kApi + "experiments/get-by-name?experiment_name=from-env");
  for (const RecordedRequest& r : reqs) EXPECT_EQ(r.header("authorization"), "Bearer s3cret-token");
}

TEST_F(MLflowLoggerTest, DefaultExperimentIsDefault) {
  ScopedEnv exp("MLFLOW_EXPERIMENT_NAME", nullptr);
  MLflowOptions o = options();
  o.experiment_name.clear();
  MLflowLogger logger(o);
  EXPECT_EQ(logger.options().experiment_name, "Default");
}

TEST_F(MLflowLoggerTest, UnsupportedTrackingUrisAreClearErrors) {
  ScopedEnv uri("MLFLOW_TRACKING_URI", nullptr);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"file:///tmp/mlruns", "local file store"},   {"databricks", "Databricks"},
      {"databricks://profile", "Databricks"},       {"./mlruns", "local file store"},
      {"sqlite:///mlflow.db", "mlflow server"},     {"ftp://host/x", "only http:// and https://"},
      {"http://", "no host"},                       {"http://host name", "space"},
  };
  for (const auto& [bad, what] : cases) {
    MLflowOptions o = options();
    o.tracking_uri = bad;
    try {
      MLflowLogger logger(o);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(bad), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(what), std::string::npos) << e.message();
    }
  }
  MLflowOptions o = options();
  o.tracking_uri.clear();
  try {
    MLflowLogger logger(o);
    ADD_FAILURE() << "an empty URI was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("MLFLOW_TRACKING_URI"), std::string::npos) << e.message();
  }
  o = options();
  o.max_attempts = 0;
  EXPECT_THROW(MLflowLogger{o}, Error);
  o = options();
  std::ofstream(path("file")) << "x";
  o.spool_dir = path("file");
  EXPECT_THROW(MLflowLogger{o}, Error);
}

// ---- protocol helpers --------------------------------------------------------------------

TEST(MLflowProtocol, SanitizeKeyMatchesMlflowNameRules) {
  EXPECT_EQ(mlflow::sanitize_key("train/loss"), "train/loss");
  EXPECT_EQ(mlflow::sanitize_key("optimizer.lr"), "optimizer.lr");
  EXPECT_EQ(mlflow::sanitize_key("a b-c:d_e"), "a b-c:d_e");
  EXPECT_EQ(mlflow::sanitize_key("acc@1 (%)"), "acc_1 ___");
  EXPECT_EQ(mlflow::sanitize_key("/a//b/./c/"), "a/b/c");
  EXPECT_EQ(mlflow::sanitize_key("a/../b"), "a/__/b");
  EXPECT_EQ(mlflow::sanitize_key("..x"), "_.x");
  EXPECT_EQ(mlflow::sanitize_key(""), "_");
  EXPECT_EQ(mlflow::sanitize_key("/"), "_");
  EXPECT_EQ(mlflow::sanitize_key("\xc3\xa9t\xc3\xa9"), "__t__");
  const std::string longkey = mlflow::sanitize_key(std::string(300, 'k'));
  EXPECT_EQ(longkey.size(), mlflow::kMaxKeyLength);
  EXPECT_EQ(mlflow::sanitize_key(std::string(249, 'k') + "/x").back(), '_');
}

TEST(MLflowProtocol, TruncateValueKeepsWholeUtf8AndSaysSo) {
  EXPECT_EQ(mlflow::truncate_value("short", 10), "short");
  const std::string t = mlflow::truncate_value(std::string(100, 'a'), 40);
  EXPECT_LE(t.size(), 40u);
  EXPECT_NE(t.find("...[truncated"), std::string::npos) << t;
  std::string utf8;
  for (int i = 0; i < 50; ++i) utf8 += "\xc3\xa9";
  const std::string u = mlflow::truncate_value(utf8, 41);
  EXPECT_LE(u.size(), 41u);
  EXPECT_EQ(json::find_invalid_utf8(u), std::string::npos) << u;
}

TEST(MLflowProtocol, FlattenConfigJoinsNestedKeys) {
  const auto kv = mlflow::flatten_config(
      json::parse(R"({"model":{"hidden":[256,128],"act":"relu","drop":null,"extra":{}},"bs":64,"ok":true})", "c"));
  std::vector<std::string> got;
  for (const auto& p : kv) got.push_back(p.key + "=" + p.value);
  EXPECT_EQ(got, (std::vector<std::string>{"model.hidden=[256,128]", "model.act=relu", "model.drop=null",
                                           "model.extra={}", "bs=64", "ok=true"}));
  const auto scalar = mlflow::flatten_config(json::parse("3", "c"));
  ASSERT_EQ(scalar.size(), 1u);
  EXPECT_EQ(scalar[0].key, "config");
}

TEST(MLflowProtocol, SplitBatchRespectsEveryLimitAndKeepsOrder) {
  mlflow::LogBatch all;
  for (int i = 0; i < 2345; ++i) all.metrics.push_back({"m", static_cast<double>(i), 1, i});
  for (int i = 0; i < 230; ++i) all.params.push_back({numbered("p", i), "v"});
  for (int i = 0; i < 120; ++i) all.tags.push_back({numbered("t", i), "v"});
  // Large params: 100 of 6000 bytes exceed 1 MB once escaped, so bytes split them too.
  for (int i = 0; i < 100; ++i) all.params.push_back({numbered("big", i), std::string(6000, '"')});
  const auto parts = mlflow::split_batch(all);
  size_t nm = 0, np = 0, nt = 0;
  int64_t next_step = 0;
  for (const auto& p : parts) {
    EXPECT_LE(p.metrics.size(), mlflow::kMaxMetricsPerBatch);
    EXPECT_LE(p.params.size(), mlflow::kMaxParamsPerBatch);
    EXPECT_LE(p.tags.size(), mlflow::kMaxTagsPerBatch);
    EXPECT_LE(p.size(), mlflow::kMaxEntitiesPerBatch);
    EXPECT_LE(mlflow::log_batch_body("0123456789abcdef0123456789abcdef", p).size(), mlflow::kMaxBatchBytes);
    for (const auto& m : p.metrics) EXPECT_EQ(m.step, next_step++);
    nm += p.metrics.size();
    np += p.params.size();
    nt += p.tags.size();
  }
  EXPECT_EQ(nm, 2345u);
  EXPECT_EQ(np, 330u);
  EXPECT_EQ(nt, 120u);
}

TEST(MLflowProtocol, BodiesAreJsonWithExactNumbers) {
  mlflow::LogBatch b;
  b.metrics.push_back({"k\"ey", 0.1, 1700000000123, -3});
  b.metrics.push_back({"big", 1e300, 0, 9007199254740993});
  b.params.push_back({"p", "line\nbreak"});
  const json::Value v = json::parse(mlflow::log_batch_body("r1", b), "body");
  EXPECT_EQ(str(v, "run_id"), "r1");
  const auto& m = v.find("metrics")->items;
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(str(m[0], "key"), "k\"ey");
  EXPECT_EQ(to_double(*m[0].find("value")), 0.1);
  EXPECT_EQ(m[0].find("timestamp")->text, "1700000000123");
  EXPECT_EQ(m[0].find("step")->text, "-3");
  EXPECT_EQ(m[1].find("value")->text, "1e+300");
  EXPECT_EQ(m[1].find("step")->text, "9007199254740993");
  EXPECT_EQ(str(v.find("params")->items[0], "value"), "line\nbreak");
  EXPECT_EQ(mlflow::json_double(std::nan("")), "\"NaN\"");
  EXPECT_EQ(mlflow::error_code(R"({"error_code":"RESOURCE_ALREADY_EXISTS","message":"x"})"), "RESOURCE_ALREADY_EXISTS");
  EXPECT_EQ(mlflow::error_code("<html>"), "");
  const json::Value u = json::parse(mlflow::update_run_body("r", "FAILED", 5), "u");
  EXPECT_EQ(str(u, "status"), "FAILED");
  EXPECT_EQ(u.find("end_time")->text, "5");
}

}  // namespace
}  // namespace zae::io
