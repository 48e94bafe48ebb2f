// CPU float32 GEMM throughput, the library's path against its peers, side by side:
//   cblas      cblas_sgemm straight into OpenBLAS
//   eigen      Eigen's own GEMM (-march=native, OpenMP threads)
//   eigen_blas Eigen with EIGEN_USE_BLAS, i.e. Eigen calling OpenBLAS
//              (bench_cpu_matmul_eigen_blas.cpp, a separate shared library)
//   zae        zae::kernels::cpu::gemm<float>, the backend this build chose
// for square n = 256, 512, 1024, 2048, reporting GFLOP/s (2 n^3 flops per product)
// as the median of 3 repetitions on wall-clock time.
//
// Invariants: every variant computes the same row-major C = A * B and is checked
// against a float64 triple loop before anything is timed; a wrong result aborts
// the program with a message. Without OpenBLAS (ZAE_BENCH_HAVE_OPENBLAS unset)
// only eigen and zae are built.
//
// Reading the numbers: the CPU column is the calling thread's time. With T threads on
// T otherwise idle cores it matches Time; Time well above CPU means the threads were
// preempted (a shared machine) and the row is not a clean measurement, rerun it.
// Eigen's OpenMP GEMM collapses under such oversubscription far more than OpenBLAS.
// OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 gives per-core rates whose CPU column
// (2 n^3 / CPU) survives a busy machine.
// GCC 12 flags its own AVX-512 intrinsics as maybe-uninitialized inside Eigen's GEMM
// (GCC bug 105593); silence it before <immintrin.h> is first included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

#if defined(ZAE_BENCH_HAVE_OPENBLAS) && ZAE_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#define HAVE_OPENBLAS 1
// Defined in bench_cpu_matmul_eigen_blas.cpp.
extern "C" void zae_bench_eigen_blas_sgemm(int64_t n, const float* a, const float* b, float* c);
#else
#define HAVE_OPENBLAS 0
#endif

namespace {

enum class Variant { cblas, eigen, eigen_blas, zae };

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::cblas: return "cblas";
    case Variant::eigen: return "eigen";
    case Variant::eigen_blas: return "eigen_blas";
    case Variant::zae: return "zae";
  }
  return "?";
}

std::vector<Variant> variants() {
#if HAVE_OPENBLAS
  return {Variant::cblas, Variant::eigen, Variant::eigen_blas, Variant::zae};
#else
  return {Variant::eigen, Variant::zae};
#endif
}

/// Row-major C = A * B, all (n, n) float32, computed by variant v.
void matmul(Variant v, int64_t n, const float* a, const float* b, float* c) {
  switch (v) {
    case Variant::cblas:
#if HAVE_OPENBLAS
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                  static_cast<int>(n), static_cast<int>(n), 1.0f, a, static_cast<int>(n), b,
                  static_cast<int>(n), 0.0f, c, static_cast<int>(n));
#endif
      return;
    case Variant::eigen: {
      // Plain column-major MatrixXf storage (a Map runs the same product kernel as a
      // MatrixXf). Column-major views of row-major buffers are the transposes, so
      // C^T = B^T A^T is c = b * a here.
      const Eigen::Map<const Eigen::MatrixXf> a_t(a, n, n), b_t(b, n, n);
      Eigen::Map<Eigen::MatrixXf> c_t(c, n, n);
      c_t.noalias() = b_t * a_t;
      return;
    }
    case Variant::eigen_blas:
#if HAVE_OPENBLAS
      zae_bench_eigen_blas_sgemm(n, a, b, c);
#endif
      return;
    case Variant::zae:
      zae::kernels::cpu::gemm<float>(false, false, n, n, n, 1.0f, a, n, 0, b, n, 0, 0.0f, c, n, 0,
                                     1);
      return;
  }
}

std::vector<float> random_matrix(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> m(static_cast<size_t>(n * n));
  for (auto& x : m) x = dist(rng);
  return m;
}

/// Checks every variant against a float64 triple loop at size n; aborts on a mismatch.
void validate(int64_t n) {
  const std::vector<float> a = random_matrix(n, 1), b = random_matrix(n, 2);
  std::vector<double> want(static_cast<size_t>(n * n)), mag(want.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t l = 0; l < n; ++l) {
      const double ail = a[i * n + l];
      for (int64_t j = 0; j < n; ++j) {
        want[i * n + j] += ail * b[l * n + j];
        mag[i * n + j] += std::fabs(ail * b[l * n + j]);
      }
    }
  }
  for (Variant v : variants()) {
    std::vector<float> c(want.size(), std::nanf(""));  // poisoned: beta = 0 must overwrite
    matmul(v, n, a.data(), b.data(), c.data());
    for (size_t idx = 0; idx < c.size(); ++idx) {
      const double err = std::fabs(double(c[idx]) - want[idx]);
      if (!(err <= 1e-5 * mag[idx] + 1e-30)) {  // also catches NaN
        std::fprintf(stderr,
                     "bench_cpu_matmul: variant %s is wrong at n=%lld: C(%lld,%lld) = %g, "
                     "want %g\n",
                     variant_name(v), static_cast<long long>(n), static_cast<long long>(idx / n),
                     static_cast<long long>(idx % n), double(c[idx]), want[idx]);
        std::abort();
      }
    }
  }
}

void bm_matmul(benchmark::State& state, Variant v) {
  const int64_t n = state.range(0);
  const std::vector<float> a = random_matrix(n, 1), b = random_matrix(n, 2);
  std::vector<float> c(static_cast<size_t>(n * n));
  for (auto _ : state) {
    matmul(v, n, a.data(), b.data(), c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(n) * double(n) * double(n);
  // kIsRate divides by the measured time (wall-clock here: UseRealTime).
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // Validate before timing: sizes past Eigen's small-product path and OpenBLAS's
  // blocking, one of them not a multiple of any block size.
  for (int64_t n : {67, 300}) validate(n);

  benchmark::AddCustomContext("zae_gemm_backend", zae::kernels::cpu::gemm_backend_name());
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
#if HAVE_OPENBLAS
  benchmark::AddCustomContext("openblas_threads", std::to_string(openblas_get_num_threads()));
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
#endif

  // Sizes outer, variants inner: each size's peers print next to each other.
  for (int64_t n : {256, 512, 1024, 2048}) {
    for (Variant v : variants()) {
      const std::string name = std::string("sgemm/") + variant_name(v);
      benchmark::RegisterBenchmark(name.c_str(), bm_matmul, v)
          ->Arg(n)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinWarmUpTime(0.1)
          ->Repetitions(3)
          ->ReportAggregatesOnly(true);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
