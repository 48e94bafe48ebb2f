// The classifier head of a language model on the CPU, float32, forward + backward:
//   unfused  cross_entropy(linear(hidden, weight), target)   stores the (N, V) logits
//   fused    linear_cross_entropy(hidden, weight, {}, target, {.chunk_rows = R})
// for N = 1024 rows (8 x 128 tokens), C = 256, V = 8192 (bench_cpu_gpt2's head), R = 0
// (automatic: here one chunk, as the logits are exactly 32 MiB), 256 and 64 rows.
// Reported: wall time per iteration, the process's CPU time per iteration (all threads: the
// work done, which load on a shared machine barely changes) and peak_MiB, the growth of the
// process's peak resident set during one forward + backward (measured before timing, with the
// CPU allocator's cache off and the heap trimmed, so that only live memory counts; Linux's
// /proc/self/clear_refs; -1 where it cannot be reset).
//
// Invariants: before anything is timed, the fused loss and gradients are checked against
// the unfused ones (relative 1e-4); a mismatch aborts the program with the numbers.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "engine/allocator.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"

namespace {

using namespace zae;

constexpr int64_t kRows = 1024, kC = 256, kV = 8192;

struct Head {
  Tensor hidden, weight, target;
  Head() {
    Generator gen(1234);
    hidden = randn({kRows, kC}, {}, &gen);
    weight = randn({kV, kC}, {}, &gen) * 0.02;
    target = randint(0, kV, {kRows}, {.dtype = DType::int64}, &gen);
    hidden.requires_grad_(true);
    weight.requires_grad_(true);
  }
  // One forward + backward; chunk < 0: unfused. Returns the loss.
  double step(int64_t chunk) {
    hidden.set_grad(Tensor());
    weight.set_grad(Tensor());
    Tensor loss = chunk < 0 ? cross_entropy(linear(hidden, weight), target)
                            : linear_cross_entropy(hidden, weight, Tensor(), target, {.chunk_rows = chunk});
    loss.backward();
    return loss.item();
  }
};

Head& head() {
  static Head h;
  return h;
}

int64_t status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k(key);
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::stoll(line.substr(k.size()));
  return -1;
}

// Peak RSS growth (MiB) during fn; -1 when the peak cannot be reset here.
double peak_growth_mib(const std::function<void()>& fn) {
  const size_t limit = cpu_cache_stats().limit_bytes;
  cpu_set_cache_limit(0);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // blocks >= 128 KiB are unmapped on free
  malloc_trim(0);
  const int64_t base = status_kib("VmRSS:");
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  const bool ok = static_cast<bool>(clear);
  fn();
  const int64_t peak = status_kib("VmHWM:");
  cpu_set_cache_limit(limit);
  return ok ? static_cast<double>(peak - base) / 1024.0 : -1.0;
}

double max_rel(const Tensor& a, const Tensor& b) {
  const double scale = amax(abs(b)).item();
  return amax(abs(a - b)).item() / (scale > 0 ? scale : 1.0);
}

void validate() {
  Head& h = head();
  const double ref_loss = h.step(-1);
  const Tensor ref_dh = h.hidden.grad().clone(), ref_dw = h.weight.grad().clone();
  for (int64_t chunk : {0, 256, 64}) {
    const double loss = h.step(chunk);
    const double e_loss = std::abs(loss - ref_loss) / std::abs(ref_loss);
    const double e_dh = max_rel(h.hidden.grad(), ref_dh), e_dw = max_rel(h.weight.grad(), ref_dw);
    if (!(e_loss < 1e-4 && e_dh < 1e-4 && e_dw < 1e-4)) {
      std::fprintf(stderr,
                   "linear_cross_entropy (chunk %lld) differs from the unfused head: loss %.8g vs %.8g, "
                   "d_hidden rel %.3g, d_weight rel %.3g\n",
                   static_cast<long long>(chunk), loss, ref_loss, e_dh, e_dw);
      std::exit(1);
    }
  }
}

void run(benchmark::State& state, int64_t chunk) {
  static bool validated = (validate(), true);
  (void)validated;
  Head& h = head();
  h.step(chunk);  // warm-up (GEMM buffers, thread pool)
  h.hidden.set_grad(Tensor());  // the peak counts this step's gradients, not the last one's
  h.weight.set_grad(Tensor());
  const double peak = peak_growth_mib([&] { h.step(chunk); });
  for (auto _ : state) benchmark::DoNotOptimize(h.step(chunk));
  state.counters["peak_MiB"] = peak;
  state.counters["logits_MiB"] = static_cast<double>(kRows * kV * 4) / (1 << 20);
}

void BM_Unfused(benchmark::State& state) { run(state, -1); }
void BM_Fused(benchmark::State& state) { run(state, state.range(0)); }

BENCHMARK(BM_Unfused)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(BM_Fused)
    ->ArgName("chunk_rows")
    ->Arg(0)
    ->Arg(256)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
