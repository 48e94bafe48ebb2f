// CPU training step of GPT-2 (nn::GPT2), float32, a CPU-sized configuration:
//   vocab 8192, block 128, n_layer 4, n_head 4, n_embd 256 (5.3M parameters, head tied to wte)
// on a batch of B = 8 sequences of T = 128 random tokens (1024 tokens per step). One step is
//   zero_grad + GPT2::loss (forward + cross-entropy) + backward + AdamW(lr 1e-3, weight_decay 0) step,
// exactly what benchmarks/torch_gpt2_cpu.py times in PyTorch (nanoGPT's model written out).
// Reported: real (wall) time per step (ms), the process's CPU time per step (all threads: the
// work done, which load on a shared machine barely changes) and tokens/s. Run with
//   --benchmark_repetitions=N --benchmark_report_aggregates_only=true
// and read the medians; benchmarks/compare_gpt2_cpu.sh runs this and PyTorch side by side.
//
// Invariants: the model is validated before it is timed: on one fixed batch, 5 steps must
// give finite losses, the first near ln(vocab) (a fresh model predicts nearly uniformly), and
// each lower than the one before; otherwise the program aborts with the losses. The timed loop
// trains on that same fixed batch (the token values do not change the cost of a step).
// Seeds are fixed (parameters: manual_seed(1234); tokens: Generator(1234)).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "nn/gpt2.h"
#include "nn/optim/adam.h"

namespace {

constexpr int64_t kBatch = 8;
constexpr int64_t kSeq = 128;

zae::nn::GPT2Config config() {
  zae::nn::GPT2Config c;
  c.vocab_size = 8192;
  c.block_size = 128;
  c.n_layer = 4;
  c.n_head = 4;
  c.n_embd = 256;
  return c;
}

// The model, its optimizer and one fixed batch (idx = tokens[:, :-1], targets = tokens[:, 1:]).
struct Setup {
  std::shared_ptr<zae::nn::GPT2> model;
  std::unique_ptr<zae::optim::AdamW> opt;
  zae::Tensor idx, targets;
};

Setup make_setup() {
  zae::manual_seed(1234);  // GPT2 draws its init from the default generator
  Setup s;
  s.model = std::make_shared<zae::nn::GPT2>(config());
  s.opt = std::make_unique<zae::optim::AdamW>(s.model->parameters(),
                                               zae::optim::AdamWOptions{.lr = 1e-3, .weight_decay = 0.0});
  zae::Generator gen(1234);
  zae::Tensor tokens = zae::randint(0, config().vocab_size, {kBatch, kSeq + 1}, {.dtype = zae::DType::int64}, &gen);
  s.idx = tokens.narrow(1, 0, kSeq).contiguous();
  s.targets = tokens.narrow(1, 1, kSeq).contiguous();
  return s;
}

// One training step; returns the loss tensor (0-dim).
zae::Tensor train_step(Setup& s) {
  s.opt->zero_grad();
  zae::Tensor loss = s.model->loss(s.idx, s.targets);
  loss.backward();
  s.opt->step();
  return loss;
}

void validate(Setup& s) {
  std::vector<double> losses;
  for (int i = 0; i < 5; ++i) losses.push_back(train_step(s).item());
  bool ok = std::fabs(losses.front() - std::log(static_cast<double>(config().vocab_size))) < 1.0;
  for (size_t i = 0; i < losses.size(); ++i) {
    ok = ok && std::isfinite(losses[i]);
    if (i > 0) ok = ok && losses[i] < losses[i - 1];
  }
  if (ok) return;
  std::fprintf(stderr, "gpt2: validation failed, losses over 5 steps on a fixed batch:");
  for (double l : losses) std::fprintf(stderr, " %g", l);
  std::fprintf(stderr, " (expected finite, first near ln(%lld) = %.3f, decreasing)\n",
               static_cast<long long>(config().vocab_size), std::log(static_cast<double>(config().vocab_size)));
  std::abort();
}

void BM_train_step_gpt2(benchmark::State& state) {
  Setup s = make_setup();
  validate(s);
  for (int i = 0; i < 2; ++i) train_step(s);  // warm-up beyond validation
  for (auto _ : state) {
    zae::Tensor loss = train_step(s);
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(kBatch * kSeq) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_train_step_gpt2)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
