// zae-train fashion-mnist with every logger at once (--csv --jsonl --tensorboard --mlflow
// --wandb): the five get the same rows. MLflow and W&B talk to local HTTP servers that
// record their requests (tests/loggers has the protocol details and a real MLflow server).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/fashion_mnist/fashion_mnist_job.h"
#include "io/json.h"
#include "io/loggers/tensorboard_reader.h"
#include "tests/support/http_test_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::CannedResponse;
using zae::test::HttpTestServer;
using zae::test::RecordedRequest;

bool have_data() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

/// Answers the W&B GraphQL upsert and file_stream, and MLflow's tracking API.
CannedResponse fake_tracking(const RecordedRequest& r) {
  const std::string p = r.path();
  if (p == "/graphql")
    return {200, R"({"data":{"upsertBucket":{"bucket":{"name":"run1","historyLineCount":0,)"
                 R"("project":{"name":"proj","entity":{"name":"ent"}}}}}})"};
  if (p.find("/file_stream") != std::string::npos) return {200, "{}"};
  if (p == "/api/2.0/mlflow/experiments/get-by-name")
    return {200, R"({"experiment":{"experiment_id":"7","name":"Default","lifecycle_stage":"active"}})"};
  if (p == "/api/2.0/mlflow/runs/create") return {200, R"({"run":{"info":{"run_id":"r1","experiment_id":"7"}}})"};
  return {200, "{}"};
}

class AppLoggersTest : public zae::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    for (const char* v : {"WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DIR"}) {
      const char* old = std::getenv(v);
      saved_[v] = old ? std::optional<std::string>(old) : std::nullopt;
    }
  }
  void TearDown() override {
    for (const auto& [k, v] : saved_) v ? (void)::setenv(k.c_str(), v->c_str(), 1) : (void)::unsetenv(k.c_str());
    TempDirTest::TearDown();
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  std::string line;
  while (std::getline(s, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

TEST_F(AppLoggersTest, EveryLoggerAtOnceGetsTheSameRows) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  HttpTestServer server(fake_tracking);
  ::setenv("WANDB_API_KEY", "secret-key-123", 1);
  ::setenv("WANDB_MODE", "online", 1);
  ::setenv("WANDB_BASE_URL", server.url().c_str(), 1);
  ::setenv("WANDB_DIR", path("wandb").c_str(), 1);

  zae::apps::FashionMnistOptions o;
  o.epochs = 2;
  o.limit_train = 512;
  o.limit_test = 256;
  o.batch_size = 128;  // 4 train steps and 1 test step per epoch
  o.log_bar = false;
  o.device = "cpu";
  o.loggers.csv_path = path("m.csv");
  o.loggers.jsonl_path = path("m.jsonl");
  o.loggers.tensorboard_dir = path("tb");
  o.loggers.mlflow_uri = server.url();
  o.loggers.wandb = true;
  o.loggers.wandb_project = "proj";
  testing::internal::CaptureStderr();
  const auto result = zae::apps::run_fashion_mnist(o);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_GT(result.test_accuracy, 0.3);
  EXPECT_EQ(err.find("secret-key-123"), std::string::npos) << "the API key must never be printed";

  // JSONL: 4 step rows + 1 epoch row per epoch, then summary and finish.
  std::vector<std::string> jsonl = lines_of(TempDirTest::read(path("m.jsonl")));
  std::vector<double> train_losses;
  std::set<int64_t> steps;
  for (const std::string& line : jsonl) {
    const zae::io::json::Value v = zae::io::json::parse(line, "m.jsonl");
    if (const auto* loss = v.find("train/loss")) train_losses.push_back(std::stod(loss->text));
    if (const auto* step = v.find("step")) steps.insert(std::stoll(step->text));
  }
  EXPECT_EQ(train_losses.size(), 8u);
  EXPECT_EQ(steps, (std::set<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_NE(jsonl.back().find("\"finished\":true"), std::string::npos);

  // CSV: the same 10 rows under one header.
  const std::vector<std::string> csv = lines_of(TempDirTest::read(path("m.csv")));
  ASSERT_EQ(csv.size(), 11u);
  EXPECT_EQ(csv[0].rfind("step,wall_time,", 0), 0u) << csv[0];

  // TensorBoard: the same train/loss values (float32) at the same steps.
  std::vector<float> tb_losses;
  for (const auto& rec : zae::io::tensorboard::read_event_dir(path("tb")))
    for (const auto& value : rec.event.values)
      if (value.tag == "train/loss") tb_losses.push_back(value.simple_value);
  ASSERT_EQ(tb_losses.size(), train_losses.size());
  for (size_t i = 0; i < tb_losses.size(); ++i) EXPECT_EQ(tb_losses[i], static_cast<float>(train_losses[i]));

  // MLflow and W&B: the runs were created, got the losses, and were closed.
  const std::vector<RecordedRequest> reqs = server.requests();
  size_t mlflow_losses = 0, wandb_rows = 0;
  bool mlflow_finished = false, wandb_complete = false;
  for (const RecordedRequest& r : reqs) {
    if (r.path() == "/api/2.0/mlflow/runs/log-batch") {
      for (size_t p = r.body.find("\"train/loss\""); p != std::string::npos; p = r.body.find("\"train/loss\"", p + 1))
        ++mlflow_losses;
    }
    if (r.path() == "/api/2.0/mlflow/runs/update" && r.body.find("FINISHED") != std::string::npos)
      mlflow_finished = true;
    if (r.path().find("/file_stream") != std::string::npos) {
      EXPECT_EQ(r.header("authorization"), "Basic YXBpOnNlY3JldC1rZXktMTIz");  // base64("api:secret-key-123")
      for (size_t p = r.body.find("train/loss"); p != std::string::npos; p = r.body.find("train/loss", p + 1))
        ++wandb_rows;
      if (r.body.find("\"complete\":true") != std::string::npos) wandb_complete = true;
    }
  }
  EXPECT_EQ(mlflow_losses, 8u);
  EXPECT_TRUE(mlflow_finished);
  EXPECT_GE(wandb_rows, 8u);  // the history rows (the summary may repeat the epoch key names)
  EXPECT_TRUE(wandb_complete);
}

TEST_F(AppLoggersTest, LoggerFlagsWithoutTheirLoggerAreErrors) {
  zae::apps::FashionMnistOptions o;
  o.loggers.wandb_project = "p";
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"--wandb-project", "need --wandb"});
  o.loggers.wandb_project.clear();
  o.loggers.mlflow_experiment = "e";
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"--mlflow-experiment needs --mlflow"});
  o.loggers.mlflow_experiment.clear();
  o.loggers.mlflow_uri = "file:///tmp/mlruns";
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"file:///tmp/mlruns"});
}

}  // namespace
