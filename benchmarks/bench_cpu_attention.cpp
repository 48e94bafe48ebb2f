// CPU causal self-attention, forward + backward, float32: the fused flash-attention op
// (scaled_dot_product_attention) against the composed path GPT-2 used before it
// (matmul, scale, masked_fill, softmax, matmul; a (T, T) matrix per head), at GPT-2-like
// shapes (B, H, T, D) = (8, 4, 128, 32) and (1, 12, 1024, 64). Reports GFLOP/s of the
// useful causal work (the unmasked half of each T x T product): 2 B H T^2 D flops forward
// (q k^T and P v) and 4 B H T^2 D backward (dP, dv, dk, dq), 6 B H T^2 D per step; the
// recomputation of S in the fused backward is not counted.
// Run with --benchmark_repetitions=3 and read the medians.
//
// Invariants: before timing, the fused output and input gradients are checked against the
// composed path (relative error <= 1e-4); a mismatch aborts with a message.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"

namespace {

using namespace zae;

Tensor composed(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  Tensor att = mul(matmul(q, k.transpose(-2, -1)), scale);
  Tensor pos = arange(q.size(-2), {.dtype = DType::int64});
  att = masked_fill(att, gt(pos.unsqueeze(0), pos.unsqueeze(1)), -std::numeric_limits<double>::infinity());
  return matmul(softmax(att, -1), v);
}

Tensor fused(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  return scaled_dot_product_attention(q, k, v, {.causal = true, .scale = scale});
}

struct Inputs {
  Tensor q, k, v, w;
};

Inputs make_inputs(int64_t b, int64_t h, int64_t t, int64_t d) {
  Generator gen(7);
  auto r = [&](void) { return randn({b, h, t, d}, {.dtype = DType::float32}, &gen).requires_grad_(); };
  Inputs in{r(), r(), r(), Tensor()};
  in.w = randn({b, h, t, d}, {.dtype = DType::float32}, &gen);
  return in;
}

// Forward + backward of sum(f(q, k, v) * w); returns the output and the three gradients.
template <class F>
std::vector<Tensor> step(F f, Inputs& in, double scale) {
  for (Tensor* x : {&in.q, &in.k, &in.v}) x->set_grad(Tensor());
  Tensor y = f(in.q, in.k, in.v, scale);
  sum(mul(y, in.w)).backward();
  return {y, in.q.grad(), in.k.grad(), in.v.grad()};
}

double rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
  double m = 1.0, e = 0.0;
  for (float z : y) m = std::max(m, static_cast<double>(std::abs(z)));
  for (size_t i = 0; i < x.size(); ++i) e = std::max(e, std::abs(static_cast<double>(x[i]) - y[i]));
  return e / m;
}

void validate(int64_t b, int64_t h, int64_t t, int64_t d) {
  Inputs in = make_inputs(b, h, t, d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<Tensor> f = step(fused, in, scale), c = step(composed, in, scale);
  const char* names[] = {"output", "dq", "dk", "dv"};
  for (int i = 0; i < 4; ++i) {
    const double e = rel_err(f[i], c[i]);
    if (!(e <= 1e-4)) {
      std::fprintf(stderr, "bench_cpu_attention: fused %s differs from the composed path (rel err %g)\n", names[i], e);
      std::abort();
    }
  }
}

template <bool kFused>
void BM_attention(benchmark::State& state) {
  const int64_t b = state.range(0), h = state.range(1), t = state.range(2), d = state.range(3);
  validate(b, h, t, d);
  Inputs in = make_inputs(b, h, t, d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (auto _ : state) {
    std::vector<Tensor> r = kFused ? step(fused, in, scale) : step(composed, in, scale);
    benchmark::DoNotOptimize(r[1].raw_data());
  }
  const double flops = 6.0 * static_cast<double>(b * h * t * t * d);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate,
                         benchmark::Counter::OneK::kIs1000);
}

void shapes(benchmark::internal::Benchmark* bm) {
  bm->ArgNames({"B", "H", "T", "D"});
  bm->Args({8, 4, 128, 32});
  bm->Args({1, 12, 1024, 64});
  bm->Unit(benchmark::kMillisecond);
  bm->UseRealTime();
}

BENCHMARK(BM_attention<true>)->Name("fused_flash")->Apply(shapes);
BENCHMARK(BM_attention<false>)->Name("composed")->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
