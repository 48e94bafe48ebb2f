// Exact resume: training 6 epochs straight, and training with a stop (at an epoch end,
// mid-epoch, inside an open gradient-accumulation window, on an epoch's last batch),
// a checkpoint and a resume in a fresh trainer give bit-identical parameters, optimizer
// state, scheduler lr, loss histories and best record. The setup exercises every piece
// of state: a shuffled loader, dropout (RNG), AdamW moments, a per-batch cosine
// schedule, gradient accumulation, clipping, validation and early-stopping counters.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/activation.h"
#include "nn/container.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/optim/adam.h"
#include "nn/sched/cosine.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"
#include "trainer/state_manager_addon.h"
#include "trainer/trainer.h"
#include "io/state_json.h"
#include "trainer/training_state.h"

namespace zae::test {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kEpochs = 6;
constexpr int64_t kBatches = 7;  // 40 samples, batch 6: 6 full + 1 of 4
constexpr int64_t kAccumulate = 2;
constexpr int64_t kStepsPerEpoch = (kBatches + kAccumulate - 1) / kAccumulate;

std::shared_ptr<TensorDataset> regression_data(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor x = randn({n, 4}, {}, &g);
  Tensor y = (x * x).sum({1}, true) - x.narrow(1, 0, 1) * 0.5;
  return std::make_shared<TensorDataset>(Batch{{"x", x}, {"y", y}});
}

class ResumeTrainer : public Trainer::add_on<StateManagerAddon> {
 public:
  using Base = Trainer::add_on<StateManagerAddon>;
  using Base::Base;
  /// Interrupt after this many train steps in all (counted through the loss history).
  int64_t interrupt_after = -1;

  StepOutput train_step(const Batch& b) override {
    Tensor pred = std::static_pointer_cast<nn::Sequential>(model_ptr())->forward(b["x"]);
    return {{"loss", mse_loss(pred, b["y"])}};
  }
  StepOutput test_step(const Batch& b) override {
    Tensor pred = std::static_pointer_cast<nn::Sequential>(model_ptr())->forward(b["x"]);
    return {{"loss", mse_loss(pred, b["y"])}};
  }
  void on_step_end() override {
    Base::on_step_end();
    if (mode() == Mode::train && static_cast<int64_t>(loss_history().size()) == interrupt_after)
      interrupt("test interrupt");
  }
};

/// Everything one run needs; built identically for the straight, stopped and resumed runs
/// (except the weight init seed, which a resume must override).
struct Job {
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<optim::AdamW> optimizer;
  std::shared_ptr<sched::CosineAnnealingScheduler> scheduler;
  std::unique_ptr<DataLoader> train, valid;
  std::unique_ptr<ResumeTrainer> trainer;

  Job(const std::string& dir, const std::string& resume, uint64_t init_seed, int64_t every_n_steps = 0) {
    manual_seed(init_seed);
    model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::Linear>(4, 16), std::make_shared<nn::ReLU>(), std::make_shared<nn::Dropout>(0.25),
        std::make_shared<nn::Linear>(16, 1)});
    optimizer = std::make_shared<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 0.02});
    scheduler = std::make_shared<sched::CosineAnnealingScheduler>(optimizer, kEpochs * kStepsPerEpoch, 1e-4);
    train = std::make_unique<DataLoader>(regression_data(40, 11),
                                         DataLoaderOptions{.batch_size = 6, .shuffle = true, .seed = 5});
    valid = std::make_unique<DataLoader>(regression_data(12, 12), DataLoaderOptions{.batch_size = 5});
    TrainerOptions t;
    t.model = model;
    t.optimizer = optimizer;
    t.scheduler = scheduler;
    t.log_bar = false;
    t.scheduler_step_on_batch = true;
    t.gradient_clip = 5.0;
    t.accumulate_grad_batches = kAccumulate;
    t.early_stopping = EarlyStopping{.monitor = "loss", .patience = 100};
    t.seed = 1234;  // the training stream (dropout); a resume replaces it with the saved position
    StateManagerOptions sm;
    sm.save_path = dir;
    sm.keep_best_k = 2;
    sm.every_n_steps = every_n_steps;
    sm.every_epoch = every_n_steps == 0;
    sm.resume = resume;
    trainer = std::make_unique<ResumeTrainer>(t, sm);
  }
  void run(int64_t epochs) { trainer->run(epochs, *train, valid.get()); }
};

class ResumeTest : public test::TempDirTest {
 protected:
  std::string dir(const std::string& name) const { return path(name); }
};

void expect_bit_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  EXPECT_EQ(0, std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()))
      << what << " differs";
}

void expect_same_training(const Job& want, const Job& got) {
  const auto wp = want.model->state_dict(), gp = got.model->state_dict();
  ASSERT_EQ(wp.size(), gp.size());
  for (size_t i = 0; i < wp.size(); ++i) expect_bit_identical(wp[i].second, gp[i].second, "parameter " + wp[i].first);
  const auto wo = want.optimizer->state_dict(), go = got.optimizer->state_dict();
  ASSERT_EQ(wo.state.size(), go.state.size());
  for (const auto& [index, buffers] : wo.state)
    for (const auto& [key, t] : buffers)
      expect_bit_identical(t, go.state.at(index).at(key), "optimizer state " + std::to_string(index) + "." + key);
  EXPECT_EQ(want.optimizer->lr(), got.optimizer->lr());
  EXPECT_EQ(want.scheduler->state_dict(), got.scheduler->state_dict());
  EXPECT_EQ(want.trainer->loss_history(Mode::train), got.trainer->loss_history(Mode::train));
  EXPECT_EQ(want.trainer->loss_history(Mode::test), got.trainer->loss_history(Mode::test));
  EXPECT_EQ(want.trainer->best_loss(), got.trainer->best_loss());
  EXPECT_EQ(want.trainer->best_epoch(), got.trainer->best_epoch());
  EXPECT_EQ(want.trainer->progress().get_epoch(), got.trainer->progress().get_epoch());
  EXPECT_EQ(want.trainer->progress().get_step(), got.trainer->progress().get_step());
  EXPECT_EQ(want.trainer->optimizer_steps(), got.trainer->optimizer_steps());
  EXPECT_EQ(want.trainer->train_metrics(), got.trainer->train_metrics());
  EXPECT_EQ(want.trainer->test_metrics(), got.trainer->test_metrics());
}

TEST_F(ResumeTest, StraightRunsAreDeterministic) {
  // Jobs are built right before they run: the trainer's seed sets the process-wide stream.
  Job a(dir("a"), "none", 1);
  a.run(kEpochs);
  Job b(dir("b"), "none", 1);
  b.run(kEpochs);
  expect_same_training(a, b);
  EXPECT_EQ(a.trainer->loss_history().size(), static_cast<size_t>(kEpochs * kBatches));
}

TEST_F(ResumeTest, StopAtEpochEndThenResumeIsBitIdentical) {
  Job straight(dir("straight"), "none", 1);
  straight.run(kEpochs);
  {
    Job first(dir("ckpt"), "none", 1);
    first.run(kEpochs / 2);
  }
  Job resumed(dir("ckpt"), "last", 99);  // another init: the checkpoint must override it
  resumed.run(kEpochs);                  // epochs_are_total: the remaining 3
  ASSERT_TRUE(resumed.trainer->state_manager().resumed_from().has_value());
  expect_same_training(straight, resumed);
}

// Train steps after which the first run is interrupted: mid-epoch with an open
// accumulation window (3, 10), mid-epoch on a window boundary (4), on an epoch's last
// batch (7, 21), right after an epoch (8).
class MidEpochResume : public ResumeTest, public ::testing::WithParamInterface<int64_t> {};

TEST_P(MidEpochResume, InterruptCheckpointResumeIsBitIdentical) {
  const int64_t stop_after = GetParam();
  Job straight(dir("straight"), "none", 1);
  straight.run(kEpochs);
  {
    Job first(dir("ckpt"), "none", 1);
    first.trainer->interrupt_after = stop_after;
    first.run(kEpochs);
    ASSERT_TRUE(first.trainer->interrupted());
    ASSERT_EQ(first.trainer->loss_history().size(), static_cast<size_t>(stop_after));
    auto saved = first.trainer->save_checkpoint("test");
    ASSERT_TRUE(saved.has_value());
    const io::Checkpoint ck = io::load_checkpoint(*saved);
    const bool open_epoch = stop_after % kBatches != 0;
    EXPECT_EQ(open_epoch, io::state::get_bool(io::state::get(ck.state, "loop", "t"), "in_epoch", "t"));
  }
  Job resumed(dir("ckpt"), "last", 99);
  resumed.run(kEpochs);
  expect_same_training(straight, resumed);
}

INSTANTIATE_TEST_SUITE_P(Steps, MidEpochResume, ::testing::Values(3, 4, 7, 8, 10, 21));

TEST_F(ResumeTest, InterruptedRunContinuesInTheSameProcess) {
  Job straight(dir("straight"), "none", 1);
  straight.run(kEpochs);
  Job r(dir("r"), "none", 1);
  r.trainer->interrupt_after = 10;
  r.run(kEpochs);
  ASSERT_TRUE(r.trainer->interrupted());
  EXPECT_TRUE(r.trainer->in_train_epoch());
  // run(n) is "n more epochs" without a resume: the open epoch 2 counts as one of them.
  r.run(kEpochs - 1);
  expect_same_training(straight, r);
}

TEST_F(ResumeTest, StepCheckpointsResumeExactly) {
  Job straight(dir("straight"), "none", 1);
  straight.run(kEpochs);
  {
    Job first(dir("ckpt"), "none", 1, /*every_n_steps=*/5);
    first.trainer->interrupt_after = 23;  // "killed" here: the last save was at optimizer step 10 (batch 20)
    first.run(kEpochs);
  }
  const io::Checkpoint ck = io::load_checkpoint(dir("ckpt") + "/last.ckpt");
  EXPECT_EQ(10, io::state::get_int(io::state::get(ck.state, "loop", "t"), "optimizer_steps", "t"));
  Job resumed(dir("ckpt"), "last", 99, 5);
  resumed.run(kEpochs);
  expect_same_training(straight, resumed);
}

TEST_F(ResumeTest, KeepsTheBestKFilesAndLast) {
  Job r(dir("r"), "none", 1);
  r.run(kEpochs);
  const auto& best = r.trainer->state_manager().best_files();
  ASSERT_EQ(best.size(), 2u);
  EXPECT_LE(best[0].value, best[1].value);
  EXPECT_EQ(best[0].epoch, r.trainer->best_epoch());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir("r"))) {
    ++files;
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "last.ckpt" || name == fs::path(best[0].path).filename().string() ||
                name == fs::path(best[1].path).filename().string())
        << "unexpected file " << name;
  }
  EXPECT_EQ(files, 3u);
  // A best file is a complete checkpoint of its epoch.
  const io::Checkpoint ck = io::load_checkpoint(best[0].path);
  EXPECT_EQ(best[0].epoch + 1, io::state::get_int(io::state::get(ck.state, "progress", "t"), "epoch", "t"));
}

TEST_F(ResumeTest, SafetensorsBestFilesHoldTheWeights) {
  manual_seed(1);
  Job r(dir("r"), "none", 1);
  r.trainer.reset();
  TrainerOptions t;
  t.model = r.model;
  t.optimizer = r.optimizer;
  t.log_bar = false;
  StateManagerOptions sm;
  sm.save_path = dir("w");
  sm.save_format = SaveFormat::safetensors;
  sm.keep_best_k = 1;
  sm.every_epoch = false;
  ResumeTrainer tr(t, sm);
  tr.run(2, *r.train);
  const auto& best = tr.state_manager().best_files();
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(fs::path(best[0].path).extension(), ".safetensors");
  EXPECT_FALSE(fs::exists(dir("w") + "/last.ckpt"));
  const io::SafetensorsData d = io::load_safetensors(best[0].path);
  EXPECT_EQ(d.tensors.size(), r.model->state_dict().size());
}

TEST_F(ResumeTest, ClearErrorsAtConstruction) {
    const std::string file = dir("a_file");
  { std::FILE* f = std::fopen(file.c_str(), "w"); std::fclose(f); }
  expect_throws_with([&] { Job r(file + "/sub", "none", 1); }, {"cannot create save_path", "a_file"});
  expect_throws_with([&] { Job r(file, "none", 1); }, {"is not a directory"});
  expect_throws_with([&] { Job r(dir("ok"), dir("nope.ckpt"), 1); }, {"resume checkpoint", "nope.ckpt", "does not exist"});
}

TEST_F(ResumeTest, ResumeFromLastWithoutAFileStartsFresh) {
  Job straight(dir("straight"), "none", 1);
  straight.run(2);
  Job r(dir("empty"), "last", 1);
  r.run(2);
  EXPECT_FALSE(r.trainer->state_manager().resumed_from().has_value());
  expect_same_training(straight, r);
}

TEST_F(ResumeTest, MismatchedSetupIsAClearError) {
  {
    Job first(dir("ckpt"), "none", 1);
    first.trainer->interrupt_after = 3;
    first.run(kEpochs);
    first.trainer->save_checkpoint("test");
  }
  Job other(dir("ckpt"), "last", 1);
  other.train = std::make_unique<DataLoader>(regression_data(40, 11), DataLoaderOptions{.batch_size = 8});
  expect_throws_with([&] { other.run(kEpochs); }, {"batches per epoch", "7", "5"});
  const io::Checkpoint ck = io::load_checkpoint(dir("ckpt") + "/last.ckpt");
  Job no_loader(dir("x"), "none", 1);
  expect_throws_with([&] { restore_training_state(*no_loader.trainer, ck, nullptr); },
                     {"mid-epoch", "pass the train loader"});
}

}  // namespace
}  // namespace zae::test
