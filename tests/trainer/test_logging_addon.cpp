// What the Trainer tells its metric loggers (trainer/logging_driver.h, logging_addon.h):
// a recording MetricLogger checks the config, per-step and per-epoch rows, steps,
// summary, finish, and that several loggers get the same rows.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"
#include "support/test_util.h"
#include "trainer/logging_addon.h"
#include "trainer/trainer_fixture.h"

namespace {

using namespace zae;

struct Recorder : io::MetricLogger {
  std::string config;
  std::vector<std::pair<int64_t, io::MetricValues>> rows;
  io::MetricValues summary;
  int flushes = 0, finishes = 0;
  bool success = false;
  std::string name() const override { return "recorder"; }
  void log_config(const io::json::Value& c) override { config = io::json::dump(c); }
  void log_metrics(const io::MetricValues& v, int64_t step) override { rows.emplace_back(step, v); }
  void log_summary(const io::MetricValues& v) override {
    for (const auto& [k, x] : v) summary[k] = x;
  }
  void flush() override { ++flushes; }
  void finish(bool ok) override {
    ++finishes;
    success = ok;
  }
};

class LoggedLineTrainer : public Trainer::add_on<MetricLoggersAddon> {
 public:
  using Base = Trainer::add_on<MetricLoggersAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& batch) override {
    Tensor pred = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(batch["x"]);
    Tensor diff = pred - batch["y"];
    return {{"loss", (diff * diff).mean()}, {"mae", diff.abs().mean()}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
  Metrics metric_on_epoch_end() override { return {{"custom", 42.0}}; }
};

TEST(LoggingAddon, ConfigStepRowsEpochRowsSummaryAndFinish) {
  auto setup = test::line_setup(0.1);
  auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>();
  DataLoader train(test::line_dataset(32), {.batch_size = 8});
  DataLoader valid(test::line_dataset(16), {.batch_size = 8});
  {
    LoggedLineTrainer trainer(setup.options, MetricLoggersOptions{{a, b}});
    trainer.run(2, train, &valid);
    EXPECT_EQ(a->finishes, 0) << "finished only when the trainer goes away";
  }
  // Config: model, optimizer options, trainer options.
  EXPECT_NE(a->config.find("\"type\":\"Linear\""), std::string::npos) << a->config;
  EXPECT_NE(a->config.find("\"parameters\":2"), std::string::npos) << a->config;
  EXPECT_NE(a->config.find("\"name\":\"SGD\""), std::string::npos) << a->config;
  EXPECT_NE(a->config.find("\"lr\":0.1"), std::string::npos) << a->config;
  EXPECT_NE(a->config.find("\"world_size\":1"), std::string::npos) << a->config;
  // 4 train steps per epoch + 1 epoch row per epoch, steps in order on the global counter.
  ASSERT_EQ(a->rows.size(), 10u);
  std::vector<int64_t> steps;
  for (const auto& [s, v] : a->rows) steps.push_back(s);
  // Train steps 1-4, epoch 1's row at step 6 (after 2 validation steps), train 7-10, epoch 2 at 12.
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 6, 7, 8, 9, 10, 12}));
  const io::MetricValues& step1 = a->rows[0].second;
  EXPECT_TRUE(step1.count("train/loss") && step1.count("train/mae") && step1.count("lr") &&
              step1.count("samples_per_sec"));
  EXPECT_DOUBLE_EQ(step1.at("lr"), 0.1);
  EXPECT_GT(step1.at("samples_per_sec"), 0);
  const io::MetricValues& epoch1 = a->rows[4].second;
  EXPECT_DOUBLE_EQ(epoch1.at("epoch"), 1);
  for (const char* k : {"train/loss_epoch", "train/mae_epoch", "test/loss_epoch", "test/mae_epoch", "test/custom_epoch",
                        "train/custom_epoch"})
    EXPECT_TRUE(epoch1.count(k)) << k;
  EXPECT_DOUBLE_EQ(epoch1.at("test/custom_epoch"), 42.0);
  // Summary and finish.
  EXPECT_DOUBLE_EQ(a->summary.at("epochs"), 2);
  EXPECT_DOUBLE_EQ(a->summary.at("best_epoch"), 2);
  EXPECT_TRUE(a->summary.count("test/loss_epoch"));
  EXPECT_GE(a->flushes, 1);
  EXPECT_EQ(a->finishes, 1);
  EXPECT_TRUE(a->success);
  // A second logger got exactly the same rows.
  ASSERT_EQ(b->rows.size(), a->rows.size());
  for (size_t i = 0; i < a->rows.size(); ++i) {
    EXPECT_EQ(b->rows[i].first, a->rows[i].first);
    for (const auto& [k, v] : a->rows[i].second) {
      if (k != "samples_per_sec") {
        EXPECT_EQ(b->rows[i].second.at(k), v) << k;
      }
    }
  }
}

TEST(LoggingAddon, StepValuesEqualTheTrainersLog) {
  auto setup = test::line_setup(0.05);
  auto rec = std::make_shared<Recorder>();
  DataLoader train(test::line_dataset(24), {.batch_size = 6});
  LoggedLineTrainer trainer(setup.options, MetricLoggersOptions{{rec}});
  trainer.run(1, train);
  const std::vector<double>& losses = trainer.loss_history();
  ASSERT_EQ(losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(rec->rows[i].second.at("train/loss"), losses[i]) << i;
}

class FailingTrainer : public LoggedLineTrainer {
 public:
  using LoggedLineTrainer::LoggedLineTrainer;
  StepOutput train_step(const Batch& batch) override {
    if (++calls_ == 3) ZAE_FAIL("step 3 broke");
    return LoggedLineTrainer::train_step(batch);
  }

 private:
  int calls_ = 0;
};

TEST(LoggingAddon, AFailedRunFinishesTheLoggersAsFailed) {
  auto setup = test::line_setup(0.1);
  auto rec = std::make_shared<Recorder>();
  DataLoader train(test::line_dataset(32), {.batch_size = 8});
  FailingTrainer trainer(setup.options, MetricLoggersOptions{{rec}});
  test::expect_throws_with([&] { trainer.run(1, train); }, {"step 3 broke"});
  EXPECT_EQ(rec->finishes, 1);
  EXPECT_FALSE(rec->success);
  EXPECT_EQ(rec->rows.size(), 2u);
}

TEST(LoggingAddon, ProcessExitFinishesWithTheStatus) {
  auto setup = test::line_setup(0.1);
  auto rec = std::make_shared<Recorder>();
  DataLoader train(test::line_dataset(8), {.batch_size = 8});
  LoggedLineTrainer trainer(setup.options, MetricLoggersOptions{{rec}});
  trainer.run(1, train);
  trainer.on_process_exit(130);  // what SignalHandlerAddon calls before exit(128 + SIGINT)
  EXPECT_EQ(rec->finishes, 1);
  EXPECT_FALSE(rec->success);
}

}  // namespace
