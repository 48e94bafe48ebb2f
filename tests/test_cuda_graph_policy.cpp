// The CUDA graph policy on the CPU (trainer/cuda_graph_step.h) and the Trainer's
// cuda_graphs option.
// - CudaGraphStep against a fake backend that counts warm-ups, captures, replays and
//   resets (its replay re-runs the captured function, as a graph re-runs its kernels):
//   the warm-up count, one capture, replays on equal keys with the batch copied into the
//   static inputs, eager + one notice per different key, abandoning after a failed
//   capture (generator offset restored), steps that draw random numbers, off / automatic /
//   on without a backend and with a blocker.
// (The allocator's private pools are tested in tests/test_device_cache_graph_pool.cpp.)
// - The Trainer on the CPU: cuda_graphs = on trains bitwise like off with one notice,
//   automatic without one; with the fake backend injected the trainer's graph path
//   (static inputs, deferred bookkeeping, per-batch scheduler, last smaller batch) trains
//   bitwise like eager steps when the optimizer is capturable, and falls back when not.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/generator.h"
#include "engine/zae.h"
#include "nn/optim/rmsprop.h"
#include "nn/sched/warmup.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/cuda_graph_step.h"

namespace zae {
namespace {

// ---- the fake capture backend ----------------------------------------------------

struct FakeGraphLog {
  int warmups = 0, captures = 0, replays = 0, resets = 0;
  bool fail_capture = false;
  bool run_on_capture = false;  // run the function while capturing (host-side effects)
  std::function<void()> captured;  // what a replay re-runs
};

class FakeGraphBackend final : public GraphBackend {
 public:
  explicit FakeGraphBackend(FakeGraphLog& log) : log_(log) {}
  void warmup(const std::function<void()>& fn) override {
    ++log_.warmups;
    fn();
  }
  // A real capture runs the host code once but executes nothing on the device; on the
  // CPU that cannot be split, so by default the fake records the function unexecuted
  // (the replay right after the capture executes it) and runs it only when asked to.
  void capture(const std::function<void()>& fn) override {
    ++log_.captures;
    if (log_.run_on_capture) fn();
    if (log_.fail_capture) ZAE_FAIL("operation not permitted when stream is capturing (fake)");
    log_.captured = fn;
  }
  void replay() override {
    ++log_.replays;
    ASSERT_TRUE(static_cast<bool>(log_.captured));
    log_.captured();
  }
  void reset() noexcept override {
    ++log_.resets;
    log_.captured = nullptr;
  }

 private:
  FakeGraphLog& log_;
};

struct PolicyFixture {
  FakeGraphLog log;
  std::vector<std::string> notices;
  std::vector<Tensor> seen;  // the x tensor each body call got
  std::unique_ptr<CudaGraphStep> step;
  CudaGraphStep::Hooks hooks;
  int prepares = 0, before_steps = 0;

  explicit PolicyFixture(CudaGraphs mode = CudaGraphs::on, int64_t warmup = 3, bool with_backend = true) {
    step = std::make_unique<CudaGraphStep>(mode, warmup,
                                           with_backend ? std::make_unique<FakeGraphBackend>(log) : nullptr,
                                           with_backend ? "" : "the device is cpu",
                                           [this](const std::string& m) { notices.push_back(m); });
    hooks.body = [this](const Batch& b) {
      seen.push_back(b["x"]);
      return StepOutput{{"loss", b["x"].sum()}};
    };
    hooks.prepare = [this] {
      ++prepares;
      return std::string();
    };
    hooks.before_step = [this] { ++before_steps; };
  }
  std::optional<CudaGraphStep::Result> run(const Batch& b, const std::string& blocker = "") {
    return step->try_run(b, blocker, hooks);
  }
};

Batch batch_of(int64_t n, double start) {
  return Batch{{"x", arange(start, start + static_cast<double>(n), 1.0, {.dtype = DType::float32})}, {"y", zeros({n})}};
}

TEST(CudaGraphPolicy, WarmsUpCapturesOnceThenReplaysOnStaticInputs) {
  PolicyFixture f(CudaGraphs::on, 3);
  for (int i = 0; i < 3; ++i) {
    auto r = f.run(batch_of(4, 10.0 * i));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->route, CudaGraphStep::Route::warmup);
    EXPECT_DOUBLE_EQ(r->out.at("loss").item(), 4 * 10.0 * i + 6);
    EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::warming);
  }
  EXPECT_EQ(f.log.warmups, 3);
  EXPECT_EQ(f.log.captures, 0);
  EXPECT_EQ(f.prepares, 1);

  Batch fourth = batch_of(4, 100.0);
  auto r = f.run(fourth);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->route, CudaGraphStep::Route::capture);
  EXPECT_EQ(f.log.captures, 1);
  EXPECT_EQ(f.log.replays, 1);  // the captured step is replayed at once: that is its real run
  EXPECT_DOUBLE_EQ(r->out.at("loss").item(), 406.0);
  const Tensor static_x = f.seen.back();
  EXPECT_NE(static_x.data<float>(), fourth["x"].data<float>());  // a static clone, not the batch itself

  for (int i = 0; i < 3; ++i) {
    Batch b = batch_of(4, -7.0 * i);
    auto rr = f.run(b);
    ASSERT_TRUE(rr.has_value());
    EXPECT_EQ(rr->route, CudaGraphStep::Route::replay);
    EXPECT_EQ(f.seen.back().data<float>(), static_x.data<float>());  // the same static input every replay
    EXPECT_DOUBLE_EQ(rr->out.at("loss").item(), 4 * -7.0 * i + 6);  // ...holding this batch's values
  }
  EXPECT_EQ(f.log.captures, 1);
  EXPECT_EQ(f.step->captures(), 1);
  EXPECT_EQ(f.step->replays(), 4);
  EXPECT_EQ(f.before_steps, 3 + 1 + 3);
  EXPECT_TRUE(f.notices.empty());
  EXPECT_EQ(f.log.resets, 0);
}

TEST(CudaGraphPolicy, ADifferentKeyRunsEagerlyWithOneNoticePerKey) {
  PolicyFixture f(CudaGraphs::automatic, 1);
  ASSERT_TRUE(f.run(batch_of(4, 0)).has_value());   // warm-up
  EXPECT_FALSE(f.run(batch_of(3, 0)).has_value());  // another key during warm-up: eager
  ASSERT_EQ(f.notices.size(), 1u);
  EXPECT_NE(f.notices[0].find("[3]"), std::string::npos) << f.notices[0];
  EXPECT_NE(f.notices[0].find("[4]"), std::string::npos) << f.notices[0];
  ASSERT_TRUE(f.run(batch_of(4, 0)).has_value());  // capture
  EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::captured);
  const size_t body_calls = f.seen.size();
  EXPECT_FALSE(f.run(batch_of(3, 1)).has_value());  // the last smaller batch
  EXPECT_FALSE(f.run(batch_of(3, 2)).has_value());
  EXPECT_EQ(f.notices.size(), 1u);  // once per key, in automatic mode too
  EXPECT_FALSE(f.run(Batch{{"x", arange(0.0, 4.0, 1.0, {.dtype = DType::float64})}, {"y", zeros({4})}}).has_value());
  EXPECT_EQ(f.notices.size(), 2u);  // a dtype change is another key
  EXPECT_EQ(f.seen.size(), body_calls);  // eager batches are the caller's to run
  auto r = f.run(batch_of(4, 5));  // the graph was kept for the original key
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->route, CudaGraphStep::Route::replay);
  EXPECT_EQ(f.step->eager_steps(), 4);
  EXPECT_EQ(f.log.resets, 0);
}

TEST(CudaGraphPolicy, AFailedCaptureAbandonsGraphsForGood) {
  PolicyFixture f(CudaGraphs::automatic, 2);
  f.log.fail_capture = true;
  f.hooks.body = [&f](const Batch& b) {
    default_generator().reserve(0);  // (no draw: the offset stays)
    f.seen.push_back(b["x"]);
    return StepOutput{{"loss", b["x"].sum()}};
  };
  ASSERT_TRUE(f.run(batch_of(2, 0)).has_value());
  ASSERT_TRUE(f.run(batch_of(2, 0)).has_value());
  EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());  // the capture failed: the caller runs it eagerly
  EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::abandoned);
  EXPECT_EQ(f.log.resets, 1);
  EXPECT_EQ(f.log.replays, 0);
  ASSERT_EQ(f.notices.size(), 1u);
  EXPECT_NE(f.notices[0].find("capturing the train step failed"), std::string::npos) << f.notices[0];
  EXPECT_NE(f.notices[0].find("not permitted when stream is capturing"), std::string::npos) << f.notices[0];
  EXPECT_EQ(f.notices[0].find('\n'), std::string::npos);  // one line
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
  EXPECT_EQ(f.notices.size(), 1u);
  EXPECT_EQ(f.log.captures, 1);
}

TEST(CudaGraphPolicy, ACaptureThatDrawsRandomNumbersIsUndoneAndAbandoned) {
  PolicyFixture f(CudaGraphs::automatic, 1);
  bool draw = false;
  f.hooks.body = [&](const Batch& b) {
    if (draw) default_generator().reserve(4);
    return StepOutput{{"loss", b["x"].sum()}};
  };
  f.log.run_on_capture = true;
  ASSERT_TRUE(f.run(batch_of(2, 0)).has_value());
  draw = true;  // only while capturing (warm-up saw none)
  const uint64_t before = default_generator().offset();
  EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
  EXPECT_EQ(default_generator().offset(), before);  // restored for the eager rerun
  EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::abandoned);
  ASSERT_EQ(f.notices.size(), 1u);
  EXPECT_NE(f.notices[0].find("random numbers"), std::string::npos) << f.notices[0];
}

TEST(CudaGraphPolicy, AWarmUpThatDrawsRandomNumbersStopsGraphs) {
  for (CudaGraphs mode : {CudaGraphs::automatic, CudaGraphs::on}) {
    PolicyFixture f(mode, 3);
    f.hooks.body = [](const Batch& b) {
      default_generator().reserve(1);  // dropout
      return StepOutput{{"loss", b["x"].sum()}};
    };
    auto r = f.run(batch_of(2, 0));
    ASSERT_TRUE(r.has_value());  // the warm-up step itself ran normally
    EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::abandoned);
    EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
    EXPECT_EQ(f.log.captures, 0);
    EXPECT_EQ(f.notices.size(), mode == CudaGraphs::on ? 1u : 0u);
  }
}

TEST(CudaGraphPolicy, OffNeverCapturesAndSaysNothing) {
  PolicyFixture f(CudaGraphs::off, 1);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
  EXPECT_EQ(f.log.warmups + f.log.captures + f.log.replays, 0);
  EXPECT_TRUE(f.seen.empty());
  EXPECT_TRUE(f.notices.empty());
  EXPECT_EQ(f.prepares, 0);
  EXPECT_EQ(f.step->eager_steps(), 4);
}

TEST(CudaGraphPolicy, WithoutABackendAutoIsSilentAndOnSaysSoOnce) {
  PolicyFixture quiet(CudaGraphs::automatic, 1, /*with_backend=*/false);
  PolicyFixture loud(CudaGraphs::on, 1, /*with_backend=*/false);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(quiet.run(batch_of(2, 0)).has_value());
    EXPECT_FALSE(loud.run(batch_of(2 + i, 0)).has_value());
  }
  EXPECT_TRUE(quiet.notices.empty());
  ASSERT_EQ(loud.notices.size(), 1u);
  EXPECT_NE(loud.notices[0].find("the device is cpu"), std::string::npos) << loud.notices[0];
  EXPECT_EQ(loud.prepares, 0);

  std::string why;
  EXPECT_EQ(make_cuda_graph_backend(Device::cpu(), &why), nullptr);
  EXPECT_EQ(why, "the device is cpu");
}

TEST(CudaGraphPolicy, BlockersAndAFailedPrepareRunEagerly) {
  PolicyFixture quiet(CudaGraphs::automatic, 1), loud(CudaGraphs::on, 1);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(quiet.run(batch_of(2, 0), "gradient accumulation").has_value());
    EXPECT_FALSE(loud.run(batch_of(2, 0), "gradient accumulation").has_value());
  }
  EXPECT_TRUE(quiet.notices.empty());
  ASSERT_EQ(loud.notices.size(), 1u);
  EXPECT_NE(loud.notices[0].find("gradient accumulation"), std::string::npos);
  EXPECT_EQ(loud.log.warmups, 0);
  // A blocker that goes away: the policy starts warming up then.
  EXPECT_TRUE(loud.run(batch_of(2, 0)).has_value());
  EXPECT_EQ(loud.log.warmups, 1);

  PolicyFixture f(CudaGraphs::on, 1);
  f.hooks.prepare = [] { return std::string("the optimizer SGD has no capturable mode"); };
  EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
  EXPECT_FALSE(f.run(batch_of(2, 0)).has_value());
  EXPECT_EQ(f.step->phase(), CudaGraphStep::Phase::abandoned);
  ASSERT_EQ(f.notices.size(), 1u);
  EXPECT_NE(f.notices[0].find("capturable"), std::string::npos);
  EXPECT_EQ(f.log.warmups, 0);
}

TEST(CudaGraphPolicy, RejectsZeroWarmUpSteps) {
  FakeGraphLog log;
  EXPECT_THROW(CudaGraphStep(CudaGraphs::on, 0, std::make_unique<FakeGraphBackend>(log)), Error);
  auto s = test::line_setup();
  s.options.cuda_graph_warmup_steps = 0;
  EXPECT_THROW(test::LineTrainer t(s.options), Error);
}

// ---- the Trainer's cuda_graphs option on the CPU ----------------------------------------


struct TrainResult {
  std::vector<float> params;
  std::vector<double> losses;
  std::string err;
  int64_t optimizer_steps = 0;
  double lr = 0;
  CudaGraphStep::Phase phase = CudaGraphStep::Phase::idle;
  int64_t replays = 0;
};

// 3 epochs of the line problem: batches of 8, 8, 8 and a last one of 6; a per-batch
// warm-up schedule so every step has another lr.
TrainResult train_line(CudaGraphs mode, FakeGraphLog* fake, int64_t warmup = 2,
                       NonFiniteLoss on_nonfinite = NonFiniteLoss::stop, bool rmsprop = false) {
  if (fake != nullptr)
    set_graph_backend_factory_for_testing(
        [fake](Device, std::string*) { return std::make_unique<FakeGraphBackend>(*fake); });
  auto s = test::line_setup(0.1, 3);
  if (rmsprop) s.options.optimizer = std::make_shared<optim::RMSprop>(s.model->parameters());
  s.options.scheduler = std::make_shared<sched::WarmUpScheduler>(s.options.optimizer, 100);
  s.options.scheduler_step_on_batch = true;
  s.options.cuda_graphs = mode;
  s.options.cuda_graph_warmup_steps = warmup;
  s.options.on_nonfinite_loss = on_nonfinite;
  test::LineTrainer t(s.options);
  DataLoader loader(test::line_dataset(30), {.batch_size = 8});
  testing::internal::CaptureStderr();
  TrainResult r;
  try {
    t.run(3, loader);
  } catch (...) {
    r.err = testing::internal::GetCapturedStderr();
    set_graph_backend_factory_for_testing(nullptr);
    throw;
  }
  r.err = testing::internal::GetCapturedStderr();
  set_graph_backend_factory_for_testing(nullptr);
  for (const Tensor& p : s.model->parameters()) {
    Tensor c = p.contiguous();
    for (int64_t i = 0; i < c.numel(); ++i) r.params.push_back(c.data<float>()[i]);
  }
  r.losses = t.loss_history();
  r.optimizer_steps = t.optimizer_steps();
  r.lr = s.options.optimizer->lr();
  if (const CudaGraphStep* g = t.cuda_graph_step()) {
    r.phase = g->phase();
    r.replays = g->replays();
  }
  return r;
}

int count_lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += what.size()) ++n;
  return n;
}

TEST(TrainerCudaGraphs, OnTheCpuOnTrainsBitwiseLikeOffWithOneNotice) {
  const TrainResult off = train_line(CudaGraphs::off, nullptr);
  const TrainResult on = train_line(CudaGraphs::on, nullptr);
  const TrainResult automatic = train_line(CudaGraphs::automatic, nullptr);
  ASSERT_EQ(off.params.size(), 2u);
  EXPECT_EQ(on.params, off.params);  // float == float: bitwise for finite values
  EXPECT_EQ(automatic.params, off.params);
  EXPECT_EQ(on.losses, off.losses);
  EXPECT_EQ(on.optimizer_steps, 12);
  EXPECT_EQ(count_lines_with(off.err, "CUDA graphs"), 0);
  EXPECT_EQ(count_lines_with(automatic.err, "CUDA graphs"), 0) << automatic.err;
  EXPECT_EQ(count_lines_with(on.err, "CUDA graphs"), 1) << on.err;
  EXPECT_NE(on.err.find("the device is cpu"), std::string::npos) << on.err;
}

TEST(TrainerCudaGraphs, TheGraphPathTrainsLikeEagerSteps) {
  const TrainResult off = train_line(CudaGraphs::off, nullptr);
  FakeGraphLog log;
  const TrainResult graphs = train_line(CudaGraphs::on, &log);
  // Eager steps with the optimizer in capturable mode (warm-up never ends) are the reference.
  FakeGraphLog eager_log;
  const TrainResult eager = train_line(CudaGraphs::on, &eager_log, /*warmup=*/1000);
  EXPECT_EQ(eager_log.captures, 0);
  EXPECT_EQ(log.captures, 1);
  EXPECT_EQ(log.warmups, 2);
  // 12 steps: 2 warm-ups, 1 capture, 3 last batches of 6 eager, 6 replays (+1 for the capture).
  EXPECT_EQ(graphs.replays, 7);
  EXPECT_EQ(graphs.optimizer_steps, 12);
  EXPECT_EQ(graphs.params, eager.params);
  EXPECT_EQ(graphs.losses, eager.losses);
  EXPECT_DOUBLE_EQ(graphs.lr, off.lr);  // the scheduler stepped once per step, replays included
  ASSERT_EQ(graphs.params.size(), off.params.size());
  for (size_t i = 0; i < off.params.size(); ++i) EXPECT_NEAR(graphs.params[i], off.params[i], 1e-6);
  EXPECT_EQ(count_lines_with(graphs.err, "CUDA graphs"), 1) << graphs.err;  // the batch of 6, once
  EXPECT_NE(graphs.err.find("[6, 1]"), std::string::npos) << graphs.err;
}

TEST(TrainerCudaGraphs, AnOptimizerWithoutACapturableStepTrainsEagerly) {
  FakeGraphLog log;
  const TrainResult graphs = train_line(CudaGraphs::on, &log, 2, NonFiniteLoss::stop, /*rmsprop=*/true);
  const TrainResult off = train_line(CudaGraphs::off, nullptr, 2, NonFiniteLoss::stop, true);
  EXPECT_EQ(graphs.phase, CudaGraphStep::Phase::abandoned);
  EXPECT_EQ(log.warmups + log.captures, 0);
  EXPECT_EQ(count_lines_with(graphs.err, "CUDA graphs"), 1) << graphs.err;
  EXPECT_NE(graphs.err.find("RMSprop cannot be captured"), std::string::npos) << graphs.err;
  EXPECT_EQ(graphs.params, off.params);
  EXPECT_EQ(graphs.losses, off.losses);
}

TEST(TrainerCudaGraphs, HostDecisionsBlockTheCapture) {
  FakeGraphLog log;
  const TrainResult r = train_line(CudaGraphs::on, &log, 2, NonFiniteLoss::skip);
  EXPECT_EQ(log.warmups + log.captures, 0);
  EXPECT_EQ(r.phase, CudaGraphStep::Phase::idle);
  EXPECT_EQ(count_lines_with(r.err, "on_nonfinite_loss = skip"), 1) << r.err;
  FakeGraphLog quiet_log;
  const TrainResult quiet = train_line(CudaGraphs::automatic, &quiet_log, 2, NonFiniteLoss::skip);
  EXPECT_EQ(count_lines_with(quiet.err, "CUDA graphs"), 0) << quiet.err;
  EXPECT_EQ(quiet.params, r.params);
}

}  // namespace
}  // namespace zae
