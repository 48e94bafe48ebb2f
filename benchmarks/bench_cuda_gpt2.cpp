// GPT-2 124M training on CUDA device 0 (issue 10): the engine's general stack (nn::GPT2,
// autograd, autocast, AdamW), batch 16 x 1024 random tokens, bfloat16 autocast with float32
// parameters (master weights), AdamW(lr 1e-4, weight_decay 0). One step = zero_grad +
// GPT2::loss + backward + AdamW step, the loss not read back. benchmarks/torch_cuda_gpt2.py
// times PyTorch eager and torch.compile on the same model in the same call.
//
// Reported: ms/step (host-timed from a synchronised start to a synchronize after `steps`
// steps; median of 3 rounds), tokens/s, peak allocated device memory (GiB, from before the
// model is built), and MFU: model FLOPs per token 6 N + 12 L T C (nanoGPT's / PaLM's
// estimate: N parameters, attention counted over the full T x T) x tokens/s, against
//   (a) the H200's dense bf16 peak, 989.4 TFLOP/s, and
//   (b) cuBLAS's own bf16 GEMM measured here on the MLP's c_fc shape (16384 x 3072 x 768).
// Invariants: validated before timing: 3 steps give finite losses, the first within 1 of
// ln(50257) (a fresh model), the last lower than the first; else exit 1 with the losses.
// Output: "GPT2 zae <ms/step> <tokens/s> <peak GiB> <mfu_peak %> <mfu_cublas %>" and TABLE lines.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_bench_util.h"
#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/cuda_memory.h"
#include "engine/device.h"
#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "nn/gpt2.h"
#include "nn/optim/adam.h"

namespace {

using namespace zae;

constexpr int64_t kBatch = 16;
constexpr int64_t kSeq = 1024;
constexpr double kH200DenseBf16Tflops = 989.4;

double cublas_bf16_ceiling_tflops(const Device& dev) {
  const int64_t m = kBatch * kSeq, n = 3072, k = 768;
  NoGradGuard ng;
  Tensor a = randn({m, k}, {.dtype = DType::bfloat16, .device = dev});
  Tensor b = randn({k, n}, {.dtype = DType::bfloat16, .device = dev});
  Tensor c = empty({m, n}, {.dtype = DType::bfloat16, .device = dev});
  const double ms = bench::cublas_gemm_ms(DType::bfloat16, m, n, k, a.raw_data(), b.raw_data(), c.raw_data(), 20);
  return 2.0 * m * n * k / (ms * 1e-3) / 1e12;
}

}  // namespace

int main() {
  if (!cuda::is_available()) {
    std::printf("bench_cuda_gpt2: no CUDA device (compiled: %s); nothing to time\n", cuda::compiled() ? "yes" : "no");
    return 0;
  }
  const Device dev = Device::cuda(0);
  const double ceiling = cublas_bf16_ceiling_tflops(dev);
  std::printf("cuBLAS bf16 GEMM 16384x3072x768: %.1f TFLOP/s\n", ceiling);

  cuda::synchronize();
  cuda::empty_cache();
  cuda::reset_peak_memory_stats(dev.index);
  const nn::GPT2Config cfg = nn::GPT2Config::named("d12");
  manual_seed(1234);
  auto model = std::make_shared<nn::GPT2>(cfg);
  model->to(dev);
  optim::AdamW opt(model->parameters(), optim::AdamWOptions{.lr = 1e-4, .weight_decay = 0.0});
  Generator gen(1234);
  Tensor tokens = randint(0, cfg.vocab_size, {kBatch, kSeq + 1}, {.dtype = DType::int64}, &gen);
  Tensor idx = tokens.narrow(1, 0, kSeq).contiguous().to(dev);
  Tensor targets = tokens.narrow(1, 1, kSeq).contiguous().to(dev);

  auto step = [&] {
    opt.zero_grad();
    Tensor loss;
    {
      autocast::Guard guard(DType::bfloat16);
      loss = model->loss(idx, targets);
    }
    loss.backward();
    opt.step();
    return loss;
  };

  std::vector<double> losses;
  for (int i = 0; i < 3; ++i) losses.push_back(step().item());
  const bool ok = std::isfinite(losses.front()) && std::isfinite(losses.back()) &&
                  std::fabs(losses.front() - std::log(static_cast<double>(cfg.vocab_size))) < 1.0 &&
                  losses.back() < losses.front();
  if (!ok) {
    std::fprintf(stderr, "gpt2 d12: validation failed, losses over 3 steps:");
    for (double l : losses) std::fprintf(stderr, " %g", l);
    std::fprintf(stderr, " (expected finite, first near ln(%lld), decreasing)\n",
                 static_cast<long long>(cfg.vocab_size));
    return 1;
  }
  for (int i = 0; i < 2; ++i) step();

  const double ms = bench::host_time_ms(step, /*steps=*/10, /*rounds=*/3);
  const double tokens_per_s = static_cast<double>(kBatch * kSeq) / (ms * 1e-3);
  const double peak_gib = static_cast<double>(cuda::memory_stats(dev.index).peak_allocated_bytes) / (1ull << 30);
  const double flops_per_token = 6.0 * static_cast<double>(cfg.num_parameters()) +
                                 12.0 * static_cast<double>(cfg.n_layer * kSeq * cfg.n_embd);
  const double achieved_tflops = flops_per_token * tokens_per_s / 1e12;
  const double mfu_peak = 100.0 * achieved_tflops / kH200DenseBf16Tflops;
  const double mfu_cublas = 100.0 * achieved_tflops / ceiling;
  std::printf("GPT2 zae %.3f %.0f %.2f %.1f %.1f\n", ms, tokens_per_s, peak_gib, mfu_peak, mfu_cublas);
  std::printf("TABLE gpt2 d12 b16x1024 bf16: %.2f ms/step, %.0f tok/s, peak %.2f GiB, %.1f TFLOP/s = MFU %.1f%% of "
              "989 TF (%.1f%% of measured cuBLAS %.0f TF); llm.c 528k tok/s 8.8 GiB (REFERENCE.md)\n",
              ms, tokens_per_s, peak_gib, achieved_tflops, mfu_peak, mfu_cublas, ceiling);
  return 0;
}
