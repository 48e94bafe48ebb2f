// GPU kernel benchmark (issue 5): achieved GB/s of the memory-bound kernels as a share
// of the measured device-to-device copy bandwidth, and matmul TFLOP/s beside cuBLAS's
// own cublasGemmEx on the same shape, all in one run. Each op is validated against the
// CPU path on a small input before it is timed. Timing: CUDA events around `iters`
// back-to-back calls after warm-up, median of 5 such rounds.
//
// Output: one "KERNEL name dtype shape bytes ms GB/s pct_of_copy" line per kernel (the
// PyTorch script benchmarks/torch_cuda_ops.py reads these and prints the ratios) and a
// TABLE at the end.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cuda_bench_util.h"
#include "engine/zae.h"
#include "nn/optim/adam.h"

namespace {

using namespace zae;

#define CHECK_CUDA(x) ZAE_BENCH_CHECK_CUDA(x)
using bench::time_ms;

struct Row {
  std::string name, dtype, shape;
  double bytes = 0, ms = 0, gbs = 0, pct = 0, tflops = 0;
};
std::vector<Row> g_rows;
double g_copy_gbs = 0;

void report(Row r) {
  r.gbs = r.bytes / (r.ms * 1e-3) / 1e9;
  r.pct = g_copy_gbs > 0 ? 100.0 * r.gbs / g_copy_gbs : 0;
  std::printf("KERNEL %s %s %s %.0f %.4f %.1f %.1f\n", r.name.c_str(), r.dtype.c_str(), r.shape.c_str(), r.bytes, r.ms,
              r.gbs, r.pct);
  g_rows.push_back(r);
}

// Max |a - b| / (1 + |b|) between a CUDA result and its CPU twin.
double max_rel_err(const Tensor& got, const Tensor& want) {
  Tensor g = got.to(Device::cpu()).to(DType::float64), w = want.to(DType::float64);
  Tensor err = abs(g - w) / (abs(w) + 1.0);
  return amax(err).item();
}

bool validate(const char* name, const Tensor& got, const Tensor& want, double tol) {
  const double e = max_rel_err(got, want);
  if (!(e <= tol)) {
    std::printf("VALIDATION FAILED %s: max rel err %.3g > %.3g\n", name, e, tol);
    return false;
  }
  return true;
}

void bench_copy() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CHECK_CUDA(cudaMemset(a, 1, bytes));
  const double ms = time_ms([&] { CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 10);
  g_copy_gbs = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
  std::printf("COPY device-to-device 1 GiB: %.4f ms, %.1f GB/s (read + write)\n", ms, g_copy_gbs);
  cudaFree(a);
  cudaFree(b);
}

void bench_elementwise(DType dt, const Device& dev) {
  // Validate on a small odd size, then time 64M elements.
  {
    Tensor a = randn({(1 << 20) + 3}), b = randn({(1 << 20) + 3});
    Tensor a2 = a.to(dt), b2 = b.to(dt);
    if (!validate("add", add(a2.to(dev), b2.to(dev)), add(a2, b2), 1e-6)) return;
  }
  const int64_t n = int64_t{1} << 26;
  Tensor a = randn({n}, {.dtype = dt, .device = dev}), b = randn({n}, {.dtype = dt, .device = dev});
  Tensor out = empty({n}, {.dtype = dt, .device = dev});
  NoGradGuard ng;
  const double ms = time_ms([&] { out = add(a, b); }, 20);
  report({"add", std::string(dtype_name(dt)), "67108864", 3.0 * n * itemsize(dt), ms});
}

void bench_sum(DType dt, const Device& dev) {
  {
    Tensor x = randn({(1 << 20) + 3}).to(dt);
    if (!validate("sum", sum(x.to(dev)), sum(x.to(DType::float64)), 1e-3)) return;
  }
  const int64_t n = int64_t{1} << 26;
  Tensor x = randn({n}, {.dtype = dt, .device = dev});
  NoGradGuard ng;
  Tensor s;
  const double ms = time_ms([&] { s = sum(x); }, 20);
  report({"sum", std::string(dtype_name(dt)), "67108864", 1.0 * n * itemsize(dt), ms});
}

void bench_softmax(DType dt, const Device& dev) {
  {
    Tensor x = randn({37, 1023}).to(dt);
    if (!validate("softmax", softmax(x.to(dev), -1), softmax(x.to(DType::float64), -1), dt == DType::float32 ? 1e-5 : 1e-2))
      return;
  }
  const int64_t rows = 16384, cols = 4096;
  Tensor x = randn({rows, cols}, {.dtype = dt, .device = dev});
  NoGradGuard ng;
  Tensor y;
  const double ms = time_ms([&] { y = softmax(x, -1); }, 10);
  report({"softmax", std::string(dtype_name(dt)), "16384x4096", 2.0 * rows * cols * itemsize(dt), ms});
}

void bench_layer_norm(DType dt, const Device& dev) {
  const int64_t rows = 32768, c = 768;
  {
    Tensor x = randn({33, c}).to(dt), w = randn({c}).to(dt), b = randn({c}).to(dt);
    if (!validate("layer_norm", layer_norm(x.to(dev), {c}, w.to(dev), b.to(dev)),
                  layer_norm(x.to(DType::float64), {c}, w.to(DType::float64), b.to(DType::float64)),
                  dt == DType::float32 ? 1e-4 : 2e-2))
      return;
  }
  Tensor x = randn({rows, c}, {.dtype = dt, .device = dev});
  Tensor w = ones({c}, {.dtype = dt, .device = dev}), b = zeros({c}, {.dtype = dt, .device = dev});
  {
    NoGradGuard ng;
    Tensor y;
    const double ms = time_ms([&] { y = layer_norm(x, {c}, w, b); }, 10);
    report({"layer_norm_fwd", std::string(dtype_name(dt)), "32768x768", 2.0 * rows * c * itemsize(dt), ms});
  }
  Tensor xg = x.detach().requires_grad_(), wg = w.detach().requires_grad_(), bg = b.detach().requires_grad_();
  Tensor dy = randn({rows, c}, {.dtype = dt, .device = dev});
  const double ms = time_ms(
      [&] {
        Tensor y = layer_norm(xg, {c}, wg, bg);
        y.backward(dy);
      },
      10);
  // forward (x in, y out) + backward (x, dy in, dx out) per step
  report({"layer_norm_fwd_bwd", std::string(dtype_name(dt)), "32768x768", 5.0 * rows * c * itemsize(dt), ms});
}

void bench_cross_entropy(DType dt, const Device& dev) {
  const int64_t n = 8192, v = 50257;
  {
    Tensor l = randn({19, 1027}).to(dt);
    Tensor t = randint(0, 1027, {19});
    if (!validate("cross_entropy", cross_entropy(l.to(dev), t.to(dev)), cross_entropy(l.to(DType::float64), t),
                  dt == DType::float32 ? 1e-5 : 1e-2))
      return;
  }
  Tensor logits = randn({n, v}, {.dtype = dt, .device = dev}).requires_grad_();
  Tensor target = randint(0, v, {n}, {.device = dev});
  const double ms = time_ms(
      [&] {
        Tensor loss = cross_entropy(logits, target);
        loss.backward();
      },
      5);
  // logits read in forward, read again and d_logits written in backward
  report({"cross_entropy_fwd_bwd", std::string(dtype_name(dt)), "8192x50257", 3.0 * n * v * itemsize(dt), ms});
}

void bench_adamw(const Device& dev) {
  const int64_t n = 124'000'000;
  Tensor p = randn({n}, {.device = dev}).requires_grad_();
  p.set_grad(randn({n}, {.device = dev}));
  optim::AdamW opt({p}, {.lr = 1e-4});
  const double ms = time_ms([&] { opt.step(); }, 5);
  // param r/w, grad r, exp_avg r/w, exp_avg_sq r/w
  report({"adamw_step", "float32", "124M", 7.0 * n * 4, ms});
}

void bench_matmul(DType dt, int64_t m, int64_t n, int64_t k, const Device& dev) {
  Tensor a = randn({m, k}, {.dtype = dt, .device = dev}), b = randn({k, n}, {.dtype = dt, .device = dev});
  {
    Tensor as = a.narrow(0, 0, 64).narrow(1, 0, 96), bs = b.narrow(0, 0, 96).narrow(1, 0, 80);
    if (!validate("matmul", matmul(as, bs), matmul(as.to(Device::cpu()).to(DType::float64),
                                                    bs.to(Device::cpu()).to(DType::float64)),
                  dt == DType::float32 ? 1e-4 : 3e-2))
      return;
  }
  NoGradGuard ng;
  Tensor c;
  const double ms = time_ms([&] { c = matmul(a, b); }, 10);
  Tensor c2 = empty({m, n}, {.dtype = dt, .device = dev});
  const double ms_cublas = bench::cublas_gemm_ms(dt, m, n, k, a.raw_data(), b.raw_data(), c2.raw_data(), 10);
  const double flops = 2.0 * m * n * k;
  char shape[64];
  std::snprintf(shape, sizeof shape, "%lldx%lldx%lld", static_cast<long long>(m), static_cast<long long>(n),
                static_cast<long long>(k));
  Row r{"matmul", std::string(dtype_name(dt)), shape, 0, ms};
  r.tflops = flops / (ms * 1e-3) / 1e12;
  const double cublas_tflops = flops / (ms_cublas * 1e-3) / 1e12;
  std::printf("MATMUL %s %s zae %.1f TFLOP/s, cublasGemmEx %.1f TFLOP/s, ratio %.3f\n", r.dtype.c_str(), shape, r.tflops,
              cublas_tflops, r.tflops / cublas_tflops);
  r.pct = 100.0 * r.tflops / cublas_tflops;
  g_rows.push_back(r);
}

}  // namespace

int main() {
  if (!cuda::is_available()) {
    std::printf("no CUDA device: nothing to benchmark\n");
    return 0;
  }
  const Device dev = Device::cuda(0);
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  manual_seed(0);
  bench_copy();
  auto guarded = [](const char* what, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("SKIPPED %s: %s\n", what, e.what());
    }
  };
  for (DType dt : {DType::float32, DType::bfloat16}) {
    guarded("add", [&] { bench_elementwise(dt, dev); });
    guarded("sum", [&] { bench_sum(dt, dev); });
    guarded("softmax", [&] { bench_softmax(dt, dev); });
    guarded("layer_norm", [&] { bench_layer_norm(dt, dev); });
    guarded("cross_entropy", [&] { bench_cross_entropy(dt, dev); });
  }
  guarded("adamw", [&] { bench_adamw(dev); });
  guarded("matmul f32", [&] { bench_matmul(DType::float32, 4096, 4096, 4096, dev); });
  guarded("matmul bf16", [&] { bench_matmul(DType::bfloat16, 8192, 8192, 8192, dev); });
  std::printf("TABLE copy bandwidth %.1f GB/s\n", g_copy_gbs);
  std::printf("TABLE %-22s %-9s %-16s %10s %10s %8s\n", "kernel", "dtype", "shape", "ms", "GB/s|TF/s", "%copy|%cuBLAS");
  for (const Row& r : g_rows)
    std::printf("TABLE %-22s %-9s %-16s %10.4f %10.1f %8.1f\n", r.name.c_str(), r.dtype.c_str(), r.shape.c_str(), r.ms,
                r.tflops > 0 ? r.tflops : r.gbs, r.pct);
  return 0;
}
