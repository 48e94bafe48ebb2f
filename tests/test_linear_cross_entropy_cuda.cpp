// CUDA linear_cross_entropy (ctest label gpu) against its CPU path (itself checked
// against the unfused composition in test_ops_linear_cross_entropy.cpp) on the same
// inputs: loss and the gradients of hidden, weight and bias, float32 and float64, chunk
// sizes 1, 3, one not dividing N and automatic; with and without bias; mean, sum and
// none (per-row losses, recomputed in backward);
// ignore_index rows, all rows ignored (NaN mean); int32 targets; bfloat16 autocast
// (loose); a GPT-2-sized vocabulary row (V = 50257); bad targets are a clear error on
// CUDA; no-grad mode records nothing. Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::cuda_matches_cpu;

Tensor targets(int64_t n, int64_t v, const std::vector<int64_t>& ignored, int64_t ignore = -100) {
  std::vector<int64_t> vals(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) vals[static_cast<size_t>(i)] = (i * 7 + 3) % v;
  for (int64_t r : ignored) vals[static_cast<size_t>(r)] = ignore;
  return tensor<int64_t>(vals, {n});
}

struct Result {
  Tensor loss, d_hidden, d_weight, d_bias;
};

Result run_on(Device dev, const Tensor& h0, const Tensor& w0, const Tensor& b0, const Tensor& t0,
              const LinearCrossEntropyOptions& o, bool autocast_bf16) {
  auto leaf = [dev](const Tensor& x) { return x.detach().to(dev).detach().clone().requires_grad_(true); };
  Tensor h = leaf(h0), w = leaf(w0);
  Tensor b = b0.defined() ? leaf(b0) : Tensor();
  Tensor loss;
  {
    autocast::Guard guard(autocast_bf16 ? DType::bfloat16 : DType::float32);
    loss = linear_cross_entropy(h, w, b, t0.to(dev), o);
  }
  (o.reduction == Reduction::none ? sum(loss * loss.detach()) : loss).backward();  // none: rows weighted by themselves
  return {loss.detach(), h.grad(), w.grad(), b.defined() ? b.grad() : Tensor()};
}

void check(DType dt, double rtol, int64_t n, int64_t c, int64_t v, bool bias, Reduction red, int64_t chunk,
           const std::vector<int64_t>& ignored, bool autocast_bf16 = false, DType target_dtype = DType::int64) {
  SCOPED_TRACE("dtype " + std::string(dtype_name(dt)) + " N=" + std::to_string(n) + " C=" + std::to_string(c) +
               " V=" + std::to_string(v) + " bias=" + std::to_string(bias) + " chunk=" + std::to_string(chunk) +
               " autocast=" + std::to_string(autocast_bf16));
  Tensor h = test::random_tensor({n, c}, dt, 1 + n);
  Tensor w = (test::random_tensor({v, c}, DType::float64, 2 + v) * 0.3).to(dt);
  Tensor b = bias ? test::random_tensor({v}, dt, 3) : Tensor();
  Tensor t = targets(n, v, ignored).to(target_dtype);
  const LinearCrossEntropyOptions o{.reduction = red, .chunk_rows = chunk};
  Result cpu = run_on(Device::cpu(), h, w, b, t, o, autocast_bf16);
  test::poison_cuda_like(cpu.d_weight);
  Result gpu = run_on(Device::cuda(0), h, w, b, t, o, autocast_bf16);
  EXPECT_TRUE(cuda_matches_cpu(gpu.loss, cpu.loss, rtol)) << "loss";
  EXPECT_TRUE(cuda_matches_cpu(gpu.d_hidden, cpu.d_hidden, rtol)) << "d_hidden";
  EXPECT_TRUE(cuda_matches_cpu(gpu.d_weight, cpu.d_weight, rtol)) << "d_weight";
  if (bias) {
    EXPECT_TRUE(cuda_matches_cpu(gpu.d_bias, cpu.d_bias, rtol)) << "d_bias";
  }
}

TEST(LinearCrossEntropyCuda, MatchesCpuFloat32AndFloat64) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (int64_t chunk : {0, 1, 3, 7})
    for (bool bias : {false, true})
      for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
        check(DType::float64, 1e-10, 23, 16, 50, bias, red, chunk, {0, 5});
        check(DType::float32, 1e-4, 23, 16, 50, bias, red, chunk, {0, 5});
      }
  check(DType::float32, 1e-4, 64, 32, 1000, true, Reduction::mean, 0, {}, false, DType::int32);
}

TEST(LinearCrossEntropyCuda, GptSizedVocabulary) {
  ZAE_SKIP_WITHOUT_CUDA();
  check(DType::float32, 1e-4, 96, 64, 50257, false, Reduction::mean, 40, {3, 95});
  check(DType::float32, 2e-2, 96, 64, 50257, false, Reduction::mean, 0, {3}, /*autocast_bf16=*/true);
}

TEST(LinearCrossEntropyCuda, AutocastBFloat16) {
  ZAE_SKIP_WITHOUT_CUDA();
  check(DType::float32, 2e-2, 40, 32, 300, true, Reduction::mean, 9, {1}, /*autocast_bf16=*/true);
  check(DType::float32, 2e-2, 40, 32, 300, true, Reduction::none, 9, {1}, /*autocast_bf16=*/true);
}

TEST(LinearCrossEntropyCuda, AllIgnoredMeanIsNaN) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor h = test::random_tensor({4, 3}, DType::float32, 1).to(Device::cuda(0)).requires_grad_(true);
  Tensor w = test::random_tensor({5, 3}, DType::float32, 2).to(Device::cuda(0)).requires_grad_(true);
  Tensor t = tensor<int64_t>({-1, -1, -1, -1}, {4}).to(Device::cuda(0));
  Tensor loss = linear_cross_entropy(h, w, Tensor(), t, {.ignore_index = -1, .chunk_rows = 3});
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  test::expect_close(h.grad().to(Device::cpu()), std::vector<double>(12, 0.0));
  test::expect_close(w.grad().to(Device::cpu()), std::vector<double>(15, 0.0));
}

TEST(LinearCrossEntropyCuda, BadTargetAndNoGrad) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor h = test::random_tensor({4, 3}, DType::float32, 1).to(Device::cuda(0));
  Tensor w = test::random_tensor({5, 3}, DType::float32, 2).to(Device::cuda(0));
  test::expect_throws_with(
      [&] { linear_cross_entropy(h, w, Tensor(), tensor<int64_t>({0, 1, 7, 2}, {4}).to(Device::cuda(0))); },
      {"linear_cross_entropy", "target 7 at row 2", "5 classes"});
  Tensor hg = h.clone();
  hg.requires_grad_(true);
  NoGradGuard no_grad;
  Tensor loss = linear_cross_entropy(hg, w, Tensor(), tensor<int64_t>({0, 1, 4, 2}, {4}).to(Device::cuda(0)));
  EXPECT_EQ(loss.grad_fn(), nullptr);
  EXPECT_TRUE(std::isfinite(loss.item()));
}

}  // namespace
