// CPU training step, float32, batch 256, AdamW(lr = 1e-3): one step is
//   zero_grad + forward + cross_entropy + backward + AdamW step
// for the two models of issue 3, built from the public nn API exactly as
// benchmarks/torch_train_step.py builds them in PyTorch:
//   mlp  Linear(784, 1024)-ReLU-Linear(1024, 1024)-ReLU-Linear(1024, 10) on (256, 784)
//   cnn  Conv2d(1, 32, 3, padding=1)-ReLU-MaxPool2d(2)-Conv2d(32, 64, 3, padding=1)-ReLU-
//        MaxPool2d(2)-Flatten-Linear(64*7*7, 128)-ReLU-Linear(128, 10) on (256, 1, 28, 28)
// Reported: real (wall) time per step (ms), the process's CPU time per step (all threads:
// the work done, which load on a shared machine barely changes) and samples/s. Run with
//   --benchmark_repetitions=N --benchmark_report_aggregates_only=true
// and read the medians; benchmarks/compare_train_step.sh runs this and PyTorch side by side.
//
// Invariants: every model is validated before it is timed: on one fixed batch, 5 steps
// must give finite losses, the first near ln(10) (a fresh classifier), and the last lower
// than the first; otherwise the program aborts with the losses. The timed loop trains on
// that same fixed batch (the data does not change the cost of a step).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "bench_models.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "nn/optim/adam.h"

namespace {

constexpr int64_t kBatch = 256;
using zae::bench::kClasses;

// A model, its optimizer and one fixed batch.
struct Setup {
  std::shared_ptr<zae::nn::Sequential> model;
  std::unique_ptr<zae::optim::AdamW> opt;
  zae::Tensor x, y;
};

Setup make_setup(bool cnn) {
  zae::Generator gen(1234);
  Setup s;
  s.model = cnn ? zae::bench::make_cnn() : zae::bench::make_mlp();
  s.opt = std::make_unique<zae::optim::AdamW>(s.model->parameters(), zae::optim::AdamWOptions{.lr = 1e-3});
  const zae::Shape xs = zae::bench::input_shape(cnn, kBatch);
  s.x = zae::randn(xs, {.dtype = zae::DType::float32}, &gen);
  s.y = zae::randint(0, kClasses, {kBatch}, {.dtype = zae::DType::int64}, &gen);
  return s;
}

// One training step; returns the loss tensor (0-dim).
zae::Tensor train_step(Setup& s) {
  s.opt->zero_grad();
  zae::Tensor loss = zae::cross_entropy(s.model->forward(s.x), s.y);
  loss.backward();
  s.opt->step();
  return loss;
}

void validate(Setup& s, const char* name) {
  std::vector<double> losses;
  for (int i = 0; i < 5; ++i) losses.push_back(train_step(s).item());
  bool ok = std::fabs(losses.front() - std::log(static_cast<double>(kClasses))) < 1.0 &&
            losses.back() < losses.front();
  for (double l : losses) ok = ok && std::isfinite(l);
  if (ok) return;
  std::fprintf(stderr, "%s: validation failed, losses over 5 steps on a fixed batch:", name);
  for (double l : losses) std::fprintf(stderr, " %g", l);
  std::fprintf(stderr, " (expected finite, first near ln(10), decreasing)\n");
  std::abort();
}

void run(benchmark::State& state, bool cnn, const char* name) {
  Setup s = make_setup(cnn);
  validate(s, name);
  for (int i = 0; i < 2; ++i) train_step(s);  // warm-up beyond validation
  for (auto _ : state) {
    zae::Tensor loss = train_step(s);
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(kBatch) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void BM_train_step_mlp(benchmark::State& state) { run(state, false, "mlp"); }
void BM_train_step_cnn(benchmark::State& state) { run(state, true, "cnn"); }

BENCHMARK(BM_train_step_mlp)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_train_step_cnn)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
