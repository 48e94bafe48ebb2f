// The Trainer loop: upstream zae-engine's test checklist re-expressed, plus the
// behaviour this engine adds (accumulation, early stopping, non-finite losses,
// max_steps, deterministic runs, real best-weight copies).
#include <gtest/gtest.h>

#include <cmath>

#include "nn/clip_grad.h"
#include "nn/sched/cosine.h"
#include "nn/sched/warmup.h"
#include "tests/support/test_util.h"
#include "tests/trainer/trainer_fixture.h"

namespace zae::test {
namespace {

DataLoader make_loader(int64_t n, int64_t batch, bool shuffle = false) {
  return DataLoader(line_dataset(n), {.batch_size = batch, .shuffle = shuffle, .seed = 7});
}

TEST(ProgressChecker, CountsFromOneAndRejectsEpochBelowOne) {
  ProgressChecker pc;
  EXPECT_EQ(pc.get_step(), 1);
  EXPECT_EQ(pc.get_epoch(), 1);
  pc.update_step();
  pc.update_step();
  pc.update_epoch();
  EXPECT_EQ(pc.get_step(), 3);
  EXPECT_EQ(pc.get_epoch(), 2);
  pc.set_epoch(5);
  EXPECT_EQ(pc.get_epoch(), 5);
  expect_throws_with([&] { pc.set_epoch(0); }, {"set_epoch", "from 1", "0"});
  pc.init_state();
  EXPECT_EQ(pc.get_step(), 1);
  EXPECT_EQ(pc.get_epoch(), 1);
}

TEST(Trainer, ModelOptimizerSchedulerMayBeAbsentAtConstruction) {
  TrainerOptions opts;
  opts.log_bar = false;
  LineTrainer t(opts);
  EXPECT_EQ(t.mode(), Mode::train);
  DataLoader loader = make_loader(8, 4);
  expect_throws_with([&] { t.run(1, loader); }, {"no model"});
  LineSetup s = line_setup();
  t.set_model(s.model);
  expect_throws_with([&] { t.run(1, loader); }, {"optimizer"});
  t.set_optimizer(s.optimizer);
  t.run(1, loader);  // no scheduler: upstream crashed here
  EXPECT_EQ(t.progress().get_epoch(), 2);
}

class RunEpochs : public ::testing::TestWithParam<int> {};

TEST_P(RunEpochs, LogsOneLossPerBatchAndFillsMetrics) {
  const int epochs = GetParam();
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(30, 8);  // 4 batches, the last one of 6
  t.run(epochs, loader);
  ASSERT_EQ(t.log_train().values.at("loss").size(), 4u);  // the last epoch's batches
  EXPECT_EQ(t.loss_history().size(), static_cast<size_t>(4 * epochs));
  EXPECT_FALSE(t.train_metrics().empty());
  EXPECT_NEAR(t.train_metrics().at("loss"), t.log_train().mean("loss"), 1e-12);
  EXPECT_EQ(t.progress().get_epoch(), epochs + 1);
  EXPECT_EQ(t.progress().get_step(), 4 * epochs + 1);
}
INSTANTIATE_TEST_SUITE_P(Trainer, RunEpochs, ::testing::Values(1, 2, 3, 4));

TEST(Trainer, TrainingReducesTheLossAndFitsTheLine) {
  LineSetup s = line_setup(0.2);
  LineTrainer t(s.options);
  DataLoader loader = make_loader(32, 8, /*shuffle=*/true);
  t.run(40, loader);
  const auto& h = t.loss_history();
  EXPECT_LT(h.back(), 1e-4);
  EXPECT_LT(h.back(), h.front() / 100);
  EXPECT_NEAR(s.model->named_parameters()[0].second.item(), 2.0, 1e-2);  // weight
  EXPECT_NEAR(s.model->named_parameters()[1].second.item(), 1.0, 1e-2);  // bias
}

TEST(Trainer, SecondRunContinuesEpochNumbering) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 8);
  testing::internal::CaptureStdout();
  t.run(2, loader);
  t.run(3, loader);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(t.progress().get_epoch(), 6);
  EXPECT_NE(out.find("Epoch 1/2 | train_loss: "), std::string::npos) << out;
  EXPECT_NE(out.find("Epoch 3/5 | train_loss: "), std::string::npos) << out;
  EXPECT_NE(out.find("Epoch 5/5 | train_loss: "), std::string::npos) << out;
}

TEST(Trainer, ValidationLoaderFillsTestMetricsAndDrivesBestWeights) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 8), valid = make_loader(8, 4);
  testing::internal::CaptureStdout();
  t.run(2, loader, &valid);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(t.mode(), Mode::train);
  EXPECT_EQ(t.log_test().values.at("loss").size(), 2u);
  EXPECT_NEAR(t.best_loss(), t.test_metrics().at("loss"), 1e-12);  // loss falls each epoch here
  EXPECT_NE(out.find("| test_loss: "), std::string::npos) << out;
}

TEST(Trainer, MissingLossIsAClearError) {
  class NoLoss : public LineTrainer {
   public:
    using LineTrainer::LineTrainer;
    StepOutput train_step(const Batch& b) override { return {{"acc", b["x"].sum()}}; }
  };
  LineSetup s = line_setup();
  NoLoss t(s.options);
  DataLoader loader = make_loader(8, 4);
  expect_throws_with([&] { t.run(1, loader); }, {"train_step must return \"loss\"", "acc"});
}

TEST(Trainer, InferenceReturnsOneOutputPerBatchAndRestoresState) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 8), data = make_loader(10, 4);
  t.run(1, loader);
  const int64_t step = t.progress().get_step();
  auto metrics = t.train_metrics();
  std::vector<Tensor> outs = t.inference(data);
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(outs[0].shape(), (Shape{4, 1}));
  EXPECT_EQ(outs[2].shape(), (Shape{2, 1}));
  EXPECT_EQ(t.mode(), Mode::train);
  EXPECT_EQ(t.progress().get_step(), step);
  EXPECT_EQ(t.train_metrics(), metrics);
  EXPECT_TRUE(t.log_test().values.empty());
}

TEST(Trainer, LogResetClearsAllFourStores) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 8), valid = make_loader(8, 4);
  t.run(1, loader, &valid);
  ASSERT_FALSE(t.log_train().values.empty());
  ASSERT_FALSE(t.log_test().values.empty());
  t.log_reset();
  EXPECT_TRUE(t.log_train().values.empty());
  EXPECT_TRUE(t.log_test().values.empty());
  EXPECT_FALSE(t.train_metrics().empty());
  t.log_reset(/*epoch_end=*/true);
  EXPECT_TRUE(t.train_metrics().empty());
  EXPECT_TRUE(t.test_metrics().empty());
}

TEST(Trainer, ToggleSwitchesModesAndTestModeDoesNotTrain) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  t.toggle();
  EXPECT_EQ(t.mode(), Mode::test);
  Tensor w = s.model->parameters()[0].clone();
  DataLoader loader = make_loader(8, 4);
  t.run(1, loader);
  expect_close(s.model->parameters()[0], w.to_vector<double>(), 0, 0);
  EXPECT_EQ(t.progress().get_epoch(), 1);  // epochs advance in train mode only
  t.toggle(Mode::train);
  EXPECT_EQ(t.mode(), Mode::train);
}

// LR seen by each optimizer step, recorded by a trainer hook.
class LrRecorder : public LineTrainer {
 public:
  using LineTrainer::LineTrainer;
  std::vector<double> lrs;
  StepOutput train_step(const Batch& b) override {
    lrs.push_back(options().optimizer->lr());
    return LineTrainer::train_step(b);
  }
};

TEST(Trainer, SchedulerStepsPerBatchOrPerEpoch) {
  {
    LineSetup s = line_setup(1.0);
    s.options.scheduler = std::make_shared<sched::WarmUpScheduler>(s.optimizer, 8);
    s.options.scheduler_step_on_batch = true;
    LrRecorder t(s.options);
    DataLoader loader = make_loader(8, 2);  // 4 batches per epoch
    t.run(2, loader);
    ASSERT_EQ(t.lrs.size(), 8u);
    for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(t.lrs[i], (i + 1) / 8.0, 1e-12) << i;
  }
  {
    LineSetup s = line_setup(1.0);
    s.options.scheduler = std::make_shared<sched::WarmUpScheduler>(s.optimizer, 4);
    LrRecorder t(s.options);
    DataLoader loader = make_loader(8, 4);  // 2 batches per epoch
    t.run(3, loader);
    ASSERT_EQ(t.lrs.size(), 6u);
    for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(t.lrs[i], (i / 2 + 1) / 4.0, 1e-12) << i;
  }
}

TEST(Trainer, PerBatchSchedulerShorterThanTheRunIsAClearError) {
  LineSetup s = line_setup();
  s.options.scheduler = std::make_shared<sched::CosineAnnealingScheduler>(s.optimizer, 5);
  s.options.scheduler_step_on_batch = true;
  LineTrainer t(s.options);
  DataLoader loader = make_loader(8, 2);  // 4 steps per epoch: 2 epochs need 8 > 5
  expect_throws_with([&] { t.run(2, loader); }, {"total_iters = 5", "needs 8"});
  EXPECT_EQ(t.progress().get_step(), 1);  // refused before any step
}

TEST(Trainer, GradientClippingBoundsTheGlobalNorm) {
  class Big : public LineTrainer {
   public:
    using LineTrainer::LineTrainer;
    std::vector<double> norms;
    void optimizer_step() override {
      LineTrainer::optimizer_step();
      double sq = 0;
      for (const Tensor& p : model().parameters()) sq += (p.grad() * p.grad()).sum().item();
      norms.push_back(std::sqrt(sq));
    }
    StepOutput train_step(const Batch& b) override {
      StepOutput out = LineTrainer::train_step(b);
      out.set("loss", out.at("loss") * 1000.0);
      return out;
    }
  };
  LineSetup s = line_setup(1e-6);
  s.options.gradient_clip = 0.5;
  Big t(s.options);
  DataLoader loader = make_loader(16, 4);
  t.run(1, loader);
  ASSERT_EQ(t.norms.size(), 4u);
  for (double n : t.norms) EXPECT_LE(n, 0.5 + 1e-6);
}

TEST(Trainer, BestWeightsAreACopyNotTheLiveTensors) {
  LineSetup s = line_setup();
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 8);
  t.run(1, loader);
  ASSERT_EQ(t.best_epoch(), 1);
  const std::vector<double> best = t.best_weights()[0].second.to_vector<double>();
  {
    NoGradGuard g;
    s.model->parameters()[0].fill_(42.0);
  }
  expect_close(t.best_weights()[0].second, best, 0, 0);
  t.apply_weights();
  expect_close(s.model->parameters()[0], best, 0, 0);
}

TEST(Trainer, GradientAccumulationEqualsOneBigBatch) {
  // Two batches of 4 accumulated (loss scaled by 1/2) == one batch of 8, for SGD on a mean loss.
  LineSetup a = line_setup(0.1, 3);
  a.options.accumulate_grad_batches = 2;
  LineTrainer ta(a.options);
  DataLoader small = make_loader(8, 4);
  ta.run(1, small);
  LineSetup b = line_setup(0.1, 3);
  LineTrainer tb(b.options);
  DataLoader big = make_loader(8, 8);
  tb.run(1, big);
  EXPECT_EQ(ta.optimizer_steps(), 1);
  for (size_t i = 0; i < 2; ++i)
    expect_close(a.model->parameters()[i], b.model->parameters()[i].to_vector<double>(), 1e-6, 1e-7);
}

TEST(Trainer, EarlyStoppingStopsAfterPatienceEpochsWithoutImprovement) {
  LineSetup s = line_setup(0.0);  // lr 0: the loss never improves after the first epoch
  s.options.early_stopping = EarlyStopping{.monitor = "loss", .patience = 2};
  LineTrainer t(s.options);
  DataLoader loader = make_loader(8, 4);
  testing::internal::CaptureStdout();
  t.run(10, loader);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(t.progress().get_epoch(), 4);  // epochs 1, 2, 3 ran
  EXPECT_TRUE(t.stop_requested());
  EXPECT_NE(out.find("early stopping"), std::string::npos) << out;
}

class NanOnce : public LineTrainer {
 public:
  using LineTrainer::LineTrainer;
  int calls = 0;
  StepOutput train_step(const Batch& b) override {
    StepOutput out = LineTrainer::train_step(b);
    if (++calls == 2) out.set("loss", out.at("loss") * std::nan(""));
    return out;
  }
};

TEST(Trainer, NonFiniteLossStopsWithAClearErrorOrIsSkipped) {
  {
    LineSetup s = line_setup();
    NanOnce t(s.options);
    DataLoader loader = make_loader(16, 4);
    expect_throws_with([&] { t.run(1, loader); }, {"non-finite loss", "epoch 1", "step 2"});
  }
  {
    LineSetup s = line_setup();
    s.options.on_nonfinite_loss = NonFiniteLoss::skip;
    NanOnce t(s.options);
    DataLoader loader = make_loader(16, 4);
    testing::internal::CaptureStderr();
    t.run(1, loader);
    testing::internal::GetCapturedStderr();
    EXPECT_EQ(t.skipped_batches(), 1);
    EXPECT_EQ(t.optimizer_steps(), 3);
    for (const Tensor& p : s.model->parameters()) EXPECT_TRUE(std::isfinite(p.sum().item()));
  }
}

TEST(Trainer, MaxStepsStopsTheRun) {
  LineSetup s = line_setup();
  s.options.max_steps = 5;
  LineTrainer t(s.options);
  DataLoader loader = make_loader(16, 4);  // 4 steps per epoch
  testing::internal::CaptureStdout();
  t.run(10, loader);
  testing::internal::GetCapturedStdout();
  EXPECT_EQ(t.optimizer_steps(), 5);
  EXPECT_EQ(t.loss_history().size(), 5u);
}

TEST(Trainer, SeededRunsAreIdentical) {
  auto train = [] {
    LineSetup s = line_setup(0.1, 99);
    s.options.seed = 1234;
    LineTrainer t(s.options);
    DataLoader loader = make_loader(32, 8, /*shuffle=*/true);
    t.run(3, loader);
    return t.loss_history();
  };
  EXPECT_EQ(train(), train());
}

TEST(Trainer, EveryEpochShufflesDifferently) {
  class Order : public LineTrainer {
   public:
    using LineTrainer::LineTrainer;
    std::vector<std::vector<double>> firsts;
    StepOutput train_step(const Batch& b) override {
      firsts.push_back(b["x"].to_vector<double>());
      return LineTrainer::train_step(b);
    }
  };
  LineSetup s = line_setup();
  Order t(s.options);
  DataLoader loader = make_loader(16, 16, /*shuffle=*/true);
  t.run(3, loader);
  ASSERT_EQ(t.firsts.size(), 3u);
  EXPECT_NE(t.firsts[0], t.firsts[1]);
  EXPECT_NE(t.firsts[1], t.firsts[2]);
}

TEST(Trainer, BadOptionsAreClearErrors) {
  LineSetup s = line_setup();
  s.options.accumulate_grad_batches = 0;
  expect_throws_with([&] { LineTrainer t(s.options); }, {"accumulate_grad_batches", "0"});
  s = line_setup();
  s.options.gradient_clip = -1;
  expect_throws_with([&] { LineTrainer t(s.options); }, {"gradient_clip", "-1"});
  s = line_setup();
  s.options.early_stopping = EarlyStopping{.patience = 0};
  expect_throws_with([&] { LineTrainer t(s.options); }, {"patience"});
}

}  // namespace
}  // namespace zae::test
