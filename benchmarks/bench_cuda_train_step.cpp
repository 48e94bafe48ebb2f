// GPU training step (issue 9): milliseconds per step of the small models of
// benchmarks/bench_models.h on CUDA device 0, float32 and bfloat16 autocast, for
//   mlp at batch 256 and 4096, cnn at batch 256,
// one step = zero_grad + forward + cross_entropy + backward + AdamW(lr 1e-3) step, the
// loss never read back (no host sync inside a step, as in PyTorch's eager loop), in two modes:
//   eager  the step as written, every kernel launched from the host;
//   graph  AdamW in capturable mode; after 3 warm-up steps on a side stream the whole step
//          is captured once into a cuda::CudaGraph (engine/cuda/graph.h) with the gradients
//          set to none before the capture (backward's first write assigns them, as in
//          PyTorch's torch.cuda.graph recipe) and replayed per step, after
//          upload_hyperparameters() (what a scheduler's lr change needs).
// benchmarks/torch_cuda_train_step.py times the same steps in PyTorch in the same call and
// prints the ratios.
//
// Timing: after validation and warm-up, 5 rounds of `steps` back-to-back steps, each round
// timed on the host from a synchronised start to a cudaDeviceSynchronize after its last step
// (launch overhead is part of a step: that is what this benchmark is about); ms/step is
// the median round's time / steps. Peak memory: the caching allocator's peak allocated bytes
// from before the model is built to the end of the timed rounds (PyTorch's
// max_memory_allocated counts the same).
//
// Invariants: every configuration is validated before it is timed: 5 steps on one fixed
// batch give finite losses, the first near ln(10), the last lower than the first; otherwise
// the program prints the losses and exits 1.
//
// Output: one "TRAIN <model> <batch> <precision> <mode> <ms/step> <peak MiB>" line per
// configuration and mode, then a table.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench_models.h"
#include "cuda_bench_util.h"
#include "engine/autocast.h"
#include "engine/cuda/graph.h"
#include "engine/cuda/stream.h"
#include "engine/cuda_memory.h"
#include "engine/device.h"
#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "nn/optim/adam.h"

namespace {

using namespace zae;

struct Config {
  bool graph = false;
  bool cnn = false;
  int64_t batch = 256;
  DType precision = DType::float32;  // float32 or bfloat16 (autocast)
  int steps = 50;                    // steps per timed round
};

struct Setup {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::AdamW> opt;
  Tensor x, y;
};

Setup make_setup(const Config& c, const Device& dev) {
  manual_seed(1234);
  Setup s;
  s.model = c.cnn ? bench::make_cnn() : bench::make_mlp();
  s.model->to(dev);
  s.opt = std::make_unique<optim::AdamW>(s.model->parameters(), optim::AdamWOptions{.lr = 1e-3});
  Generator gen(1234);
  s.x = randn(bench::input_shape(c.cnn, c.batch), {.dtype = DType::float32}, &gen).to(dev);
  s.y = randint(0, bench::kClasses, {c.batch}, {.dtype = DType::int64}, &gen).to(dev);
  return s;
}

Tensor train_step(Setup& s, DType precision) {
  s.opt->zero_grad();
  Tensor loss;
  {
    autocast::Guard guard(precision);
    loss = cross_entropy(s.model->forward(s.x), s.y);
  }
  loss.backward();
  s.opt->step();
  return loss;
}

std::string name_of(const Config& c) { return c.cnn ? "cnn" : "mlp"; }
const char* mode_name(const Config& c) { return c.graph ? "graph" : "eager"; }
const char* precision_name(DType t) { return t == DType::bfloat16 ? "bf16" : "fp32"; }

bool validate(Setup& s, const Config& c) {
  std::vector<double> losses;
  for (int i = 0; i < 5; ++i) losses.push_back(train_step(s, c.precision).item());
  bool ok = std::fabs(losses.front() - std::log(static_cast<double>(bench::kClasses))) < 1.0 &&
            losses.back() < losses.front();
  for (double l : losses) ok = ok && std::isfinite(l);
  if (ok) return true;
  std::fprintf(stderr, "%s b%lld %s: validation failed, losses over 5 steps on a fixed batch:", name_of(c).c_str(),
               static_cast<long long>(c.batch), precision_name(c.precision));
  for (double l : losses) std::fprintf(stderr, " %g", l);
  std::fprintf(stderr, " (expected finite, first near ln(10), decreasing)\n");
  return false;
}

struct Result {
  Config config;
  double ms = 0;
  double peak_mib = 0;
};

Result run(const Config& c, const Device& dev) {
  cuda::synchronize();
  cuda::reset_peak_memory_stats(dev.index);
  Result r{c};
  {
    Setup s = make_setup(c, dev);
    if (c.graph) s.opt->set_capturable(true);
    if (!validate(s, c)) std::exit(1);
    if (!c.graph) {
      for (int i = 0; i < 5; ++i) train_step(s, c.precision);  // warm-up (allocator, cuBLASLt heuristics)
      r.ms = bench::host_time_ms([&] { train_step(s, c.precision); }, c.steps, /*rounds=*/5);
    } else {
      cuda::CudaGraph graph(dev.index);
      {
        cuda::SideStream side(dev.index);
        side.wait_for(cuda::current_stream(dev.index));
        {
          cuda::StreamGuard on_side(dev.index, side.get());
          for (int i = 0; i < 3; ++i) train_step(s, c.precision);
          s.opt->zero_grad(true);
          graph.capture_begin();
          Tensor loss;
          {
            autocast::Guard guard(c.precision);
            loss = cross_entropy(s.model->forward(s.x), s.y);
          }
          loss.backward();
          s.opt->step();
          graph.capture_end();
        }
        side.join_into(cuda::current_stream(dev.index));
      }
      auto replay = [&] {
        s.opt->upload_hyperparameters();
        graph.replay();
      };
      for (int i = 0; i < 5; ++i) replay();
      r.ms = bench::host_time_ms(replay, c.steps, /*rounds=*/5);
    }
    r.peak_mib = static_cast<double>(cuda::memory_stats(dev.index).peak_allocated_bytes) / (1 << 20);
  }
  std::printf("TRAIN %s %lld %s %s %.4f %.1f\n", name_of(c).c_str(), static_cast<long long>(c.batch),
              precision_name(c.precision), mode_name(c), r.ms, r.peak_mib);
  std::fflush(stdout);
  return r;
}

}  // namespace

int main() {
  if (!zae::cuda::is_available()) {
    std::printf("bench_cuda_train_step: no CUDA device (compiled: %s); nothing to time\n",
                zae::cuda::compiled() ? "yes" : "no");
    return 0;
  }
  const zae::Device dev = zae::Device::cuda(0);
  std::vector<Result> results;
  for (bool graph : {false, true}) {
    for (zae::DType precision : {zae::DType::float32, zae::DType::bfloat16}) {
      try {
        results.push_back(run({.graph = graph, .cnn = false, .batch = 256, .precision = precision, .steps = 100}, dev));
        results.push_back(run({.graph = graph, .cnn = false, .batch = 4096, .precision = precision, .steps = 30}, dev));
        results.push_back(run({.graph = graph, .cnn = true, .batch = 256, .precision = precision, .steps = 50}, dev));
      } catch (const std::exception& e) {
        std::printf("FAILED %s %s: %s\n", graph ? "graph" : "eager", precision == zae::DType::bfloat16 ? "bf16" : "fp32",
                    e.what());
      }
    }
  }
  std::printf("TABLE train step (ms, median of 5 rounds; peak MiB)\n");
  for (const Result& r : results)
    std::printf("TABLE %-4s b%-5lld %-5s %-5s %9.4f ms %8.1f MiB\n", name_of(r.config).c_str(),
                static_cast<long long>(r.config.batch), precision_name(r.config.precision), mode_name(r.config), r.ms,
                r.peak_mib);
  return 0;
}
