// Whole-step CUDA graphs on a GPU (ctest label gpu; every test skips without a device).
// - A small MLP (20-32-5, cross-entropy) trained by the Trainer with cuda_graphs = on
//   (2 warm-up steps, then one capture and replays) ends with bitwise the parameters of
//   the same training run eagerly with the optimizer in capturable mode, for SGD with
//   momentum and for AdamW, under a per-batch cosine schedule (lr changes every step), in
//   deterministic mode; and within float rounding of plain (non-capturable) eager steps.
// - Batches of another shape (the last, smaller batch of each epoch) run eagerly with one
//   notice, and the result is still bitwise the eager one.
// - A step that reads a value on the host (item()) cannot be captured: the capture fails,
//   one notice names the reason, and training continues eagerly with exact results.
// - CudaGraph with the caching allocator: memory allocated and freed inside a capture (the
//   private pool) is never handed to eager allocations on the capture stream while the
//   graph lives; replays recompute from the current input; reset() returns the pool's
//   (fully free) segment to the driver; capturing the default stream is a clear error.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/cuda_memory.h"
#include "engine/determinism.h"
#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/tensor.h"
#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/activation.h"
#include "nn/container.h"
#include "nn/linear.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "nn/sched/cosine.h"
#include "tests/support/cuda_test_util.h"
#include "trainer/trainer.h"

#ifdef ZAE_TESTS_WITH_CUDA
#include "engine/cuda/graph.h"
#include "engine/cuda/stream.h"
#endif

namespace zae {
namespace {

class MlpTrainer : public Trainer {
 public:
  using Trainer::Trainer;
  bool read_on_host = false;  // a host read inside the step: not capturable
  StepOutput train_step(const Batch& batch) override {
    Tensor logits = std::static_pointer_cast<nn::Sequential>(model_ptr())->forward(batch["x"]);
    Tensor loss = cross_entropy(logits, batch["y"]);
    if (read_on_host) (void)loss.item();
    return {{"loss", loss}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
};

enum class Opt { sgd, adamw };
enum class Run { graphs, eager_capturable, eager_plain };

struct Outcome {
  std::vector<float> params;
  std::vector<double> losses;
  int64_t replays = 0, captures = 0, eager_steps = 0;
  CudaGraphStep::Phase phase = CudaGraphStep::Phase::idle;
  std::string err;
};

// 3 epochs over `samples` random samples in batches of 16, lr following a per-batch cosine.
Outcome train_mlp(Opt which, Run run, int64_t samples = 64, bool read_on_host = false) {
  DeterministicGuard deterministic(true);
  manual_seed(1234);
  Tensor x = randn({samples, 20});
  Tensor y = randint(0, 5, {samples});
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(20, 32), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(32, 5)});
  model->to(Device::cuda());
  std::shared_ptr<optim::Optimizer> opt;
  if (which == Opt::sgd)
    opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  else
    opt = std::make_shared<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 3e-3, .weight_decay = 0.1});
  if (run == Run::eager_capturable) opt->set_capturable(true);
  TrainerOptions o;
  o.model = model;
  o.device = Device::cuda();
  o.optimizer = opt;
  o.scheduler = std::make_shared<sched::CosineAnnealingScheduler>(opt, 40, 1e-4);
  o.scheduler_step_on_batch = true;
  o.log_bar = false;
  o.cuda_graphs = run == Run::graphs ? CudaGraphs::on : CudaGraphs::off;
  o.cuda_graph_warmup_steps = 2;
  MlpTrainer t(o);
  t.read_on_host = read_on_host;
  DataLoader loader(std::make_shared<TensorDataset>(Batch{{"x", x}, {"y", y}}), {.batch_size = 16});
  testing::internal::CaptureStderr();
  t.run(3, loader);
  Outcome out;
  out.err = testing::internal::GetCapturedStderr();
  for (const Tensor& p : model->parameters()) {
    Tensor c = p.to(Device::cpu()).contiguous();
    for (int64_t i = 0; i < c.numel(); ++i) out.params.push_back(c.data<float>()[i]);
  }
  out.losses = t.loss_history();
  if (const CudaGraphStep* g = t.cuda_graph_step()) {
    out.replays = g->replays();
    out.captures = g->captures();
    out.eager_steps = g->eager_steps();
    out.phase = g->phase();
  }
  return out;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += what.size()) ++n;
  return n;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * (1.0 + std::abs(b[i]))) << "at " << i;
}

TEST(CudaGraphsCuda, ReplayedMlpStepsAreBitwiseEagerSteps) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (Opt which : {Opt::sgd, Opt::adamw}) {
    SCOPED_TRACE(which == Opt::sgd ? "SGD" : "AdamW");
    const Outcome graphs = train_mlp(which, Run::graphs);
    const Outcome eager = train_mlp(which, Run::eager_capturable);
    const Outcome plain = train_mlp(which, Run::eager_plain);
    EXPECT_EQ(graphs.captures, 1);
    EXPECT_EQ(graphs.replays, 12 - 2);  // 12 steps: 2 warm-ups, then the capture's replay and 9 more
    EXPECT_EQ(graphs.phase, CudaGraphStep::Phase::captured);
    EXPECT_EQ(count(graphs.err, "CUDA graphs"), 0) << graphs.err;
    EXPECT_EQ(graphs.params, eager.params);  // bitwise
    EXPECT_EQ(graphs.losses, eager.losses);
    expect_close(graphs.params, plain.params, 1e-5);
  }
}

TEST(CudaGraphsCuda, AShapeChangeRunsEagerlyAndStaysExact) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Outcome graphs = train_mlp(Opt::adamw, Run::graphs, /*samples=*/60);  // batches 16, 16, 16, 12
  const Outcome eager = train_mlp(Opt::adamw, Run::eager_capturable, 60);
  EXPECT_EQ(graphs.captures, 1);
  EXPECT_EQ(graphs.eager_steps, 3);  // the batch of 12 in each epoch
  EXPECT_EQ(graphs.replays, 1 + 6);
  EXPECT_EQ(count(graphs.err, "CUDA graphs"), 1) << graphs.err;  // once for that key
  EXPECT_NE(graphs.err.find("[12, 20]"), std::string::npos) << graphs.err;
  EXPECT_EQ(graphs.params, eager.params);
}

TEST(CudaGraphsCuda, AStepThatReadsOnTheHostFallsBackToEager) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Outcome graphs = train_mlp(Opt::sgd, Run::graphs, 64, /*read_on_host=*/true);
  const Outcome eager = train_mlp(Opt::sgd, Run::eager_capturable, 64, true);
  EXPECT_EQ(graphs.phase, CudaGraphStep::Phase::abandoned);
  EXPECT_EQ(graphs.replays, 0);
  EXPECT_EQ(count(graphs.err, "capturing the train step failed"), 1) << graphs.err;
  EXPECT_EQ(graphs.params, eager.params);
  EXPECT_EQ(graphs.losses, eager.losses);
}

#ifdef ZAE_TESTS_WITH_CUDA
TEST(CudaGraphsCuda, PrivatePoolIsNotReusedWhileTheGraphLives) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Device dev = Device::cuda(0);
  Tensor a = full({1024}, 1.0, {.device = dev});
  cuda::SideStream side(0);
  cuda::CudaGraph graph(0);
  EXPECT_THROW(graph.capture_begin(), Error);  // the current stream is the default stream
  EXPECT_FALSE(graph.ready());

  const void* temp_ptr = nullptr;
  Tensor out;
  side.wait_for(cuda::current_stream(0));
  {
    cuda::StreamGuard on_side(0, side.get());
    graph.capture_begin();
    EXPECT_TRUE(cuda::stream_is_capturing(side.get()));
    {
      Tensor temp = a * 2.0;  // allocated and freed inside the capture
      temp_ptr = temp.raw_data();
      out = temp + 1.0;
    }
    graph.capture_end();
    EXPECT_FALSE(cuda::stream_is_capturing(side.get()));
  }
  ASSERT_TRUE(graph.ready());
  std::vector<Tensor> eager;
  {
    cuda::StreamGuard on_side(0, side.get());
    for (int i = 0; i < 16; ++i) {
      eager.push_back(Tensor::empty({1024}, {.device = dev}));
      EXPECT_NE(eager.back().raw_data(), temp_ptr);
      EXPECT_NE(eager.back().raw_data(), out.raw_data());
    }
  }
  side.join_into(cuda::current_stream(0));
  graph.replay();
  EXPECT_DOUBLE_EQ(out.sum().item(), 3.0 * 1024);
  a.fill_(5.0);
  graph.replay();
  graph.replay();
  EXPECT_DOUBLE_EQ(out.sum().item(), 11.0 * 1024);
  EXPECT_EQ(graph.replays(), 3);

  const cuda::MemoryStats before = cuda::memory_stats(0);
  out = Tensor();  // back into the pool, which the graph still owns: nothing is released
  EXPECT_EQ(cuda::memory_stats(0).reserved_bytes, before.reserved_bytes);
  graph.reset();  // waits for the replays; the pool's segment, now fully free, goes back to the driver
  EXPECT_FALSE(graph.ready());
  EXPECT_EQ(graph.pool(), 0u);
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_LT(after.reserved_bytes, before.reserved_bytes);
  EXPECT_GT(after.num_raw_frees, before.num_raw_frees);
  cuda::synchronize();
}
#endif

}  // namespace
}  // namespace zae
