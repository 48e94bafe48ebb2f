// CPU elementwise throughput: achieved GB/s (bytes read + written per second) of
//   add          zae::add(a, b) on contiguous float32 (allocates its output, as a user sees it)
//   add_into     binary_into(add) into a preallocated output (the kernel alone)
//   add_strided  zae::add(a.t(), b): one operand transposed, so the kernel walks it strided
//   add_strided_into  the same into a preallocated output (the strided traversal alone)
//   memcpy       std::memcpy of the same total bytes on the same number of threads,
//                the measured ceiling (a memcpy of S bytes reads S and writes S)
// for n = 1M, 16M and 64M elements. Run with --benchmark_repetitions=3 and read the medians.
//
// Invariants: every zae variant is checked against a[i] + b[i] (at sampled indices)
// before it is timed; a wrong result aborts with a message. Bytes per add are
// 3 * n * 4 (two float32 reads, one float32 write).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"

namespace {

constexpr double kBytesPerElement = 3.0 * sizeof(float);

void set_rate(benchmark::State& state, int64_t n) {
  state.counters["bytes"] = benchmark::Counter(kBytesPerElement * static_cast<double>(n) *
                                                   static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate, benchmark::Counter::OneK::kIs1000);
}

zae::Tensor input(const zae::Shape& shape, uint64_t seed) {
  zae::Generator gen(seed);
  return zae::rand(shape, {.dtype = zae::DType::float32}, &gen);
}

// Aborts unless out == a + b at ~1000 evenly spaced logical indices (and the last one).
void validate(const zae::Tensor& out, const zae::Tensor& a, const zae::Tensor& b, const char* what) {
  zae::Tensor o = out.contiguous(), ac = a.contiguous(), bc = b.contiguous();
  const float* po = o.data<float>();
  const float* pa = ac.data<float>();
  const float* pb = bc.data<float>();
  const int64_t n = o.numel();
  const int64_t step = std::max<int64_t>(1, n / 1000);
  auto check = [&](int64_t i) {
    if (po[i] == pa[i] + pb[i]) return;
    std::fprintf(stderr, "%s: wrong result at %lld: %g != %g + %g\n", what, static_cast<long long>(i), po[i], pa[i],
                 pb[i]);
    std::abort();
  };
  for (int64_t i = 0; i < n; i += step) check(i);
  if (n > 0) check(n - 1);
}

void BM_add(benchmark::State& state) {
  const int64_t n = state.range(0);
  zae::Tensor a = input({n}, 1), b = input({n}, 2);
  validate(zae::add(a, b), a, b, "add");
  for (auto _ : state) {
    zae::Tensor out = zae::add(a, b);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rate(state, n);
}

void BM_add_into(benchmark::State& state) {
  const int64_t n = state.range(0);
  zae::Tensor a = input({n}, 1), b = input({n}, 2), out = zae::zeros({n});
  zae::binary_into(zae::BinaryOp::add, out, a, b, 1.0, "add");
  validate(out, a, b, "add_into");
  for (auto _ : state) {
    zae::binary_into(zae::BinaryOp::add, out, a, b, 1.0, "add");
    benchmark::DoNotOptimize(out.raw_data());
    benchmark::ClobberMemory();
  }
  set_rate(state, n);
}

void BM_add_strided(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  zae::Tensor a = input({side, side}, 1).t(), b = input({side, side}, 2);  // a: (side, side), transposed view
  validate(zae::add(a, b), a, b, "add_strided");
  for (auto _ : state) {
    zae::Tensor out = zae::add(a, b);
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_rate(state, side * side);
}

void BM_add_strided_into(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  zae::Tensor a = input({side, side}, 1).t(), b = input({side, side}, 2), out = zae::zeros({side, side});
  zae::binary_into(zae::BinaryOp::add, out, a, b, 1.0, "add");
  validate(out, a, b, "add_strided_into");
  for (auto _ : state) {
    zae::binary_into(zae::BinaryOp::add, out, a, b, 1.0, "add");
    benchmark::DoNotOptimize(out.raw_data());
    benchmark::ClobberMemory();
  }
  set_rate(state, side * side);
}

// memcpy of 1.5 * n * 4 bytes (so read + written bytes equal an add's), split over the threads.
void BM_memcpy(benchmark::State& state) {
  const int64_t n = state.range(0);
  const size_t bytes = static_cast<size_t>(kBytesPerElement * static_cast<double>(n) / 2.0);
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  auto copy = [&] {
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
      size_t lo = bytes * t / threads, hi = bytes * (t + 1) / threads;
      pool.emplace_back([&, lo, hi] { std::memcpy(dst.data() + lo, src.data() + lo, hi - lo); });
    }
    std::memcpy(dst.data(), src.data(), bytes / threads);
    for (auto& th : pool) th.join();
  };
  copy();
  if (std::memcmp(dst.data(), src.data(), bytes) != 0) {
    std::fprintf(stderr, "memcpy: wrong result\n");
    std::abort();
  }
  for (auto _ : state) {
    copy();
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, n);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {int64_t{1} << 20, int64_t{1} << 24, int64_t{1} << 26}) b->Arg(n);
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_memcpy)->Apply(sizes);
BENCHMARK(BM_add)->Apply(sizes);
BENCHMARK(BM_add_into)->Apply(sizes);
BENCHMARK(BM_add_strided)->Apply(sizes);
BENCHMARK(BM_add_strided_into)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
