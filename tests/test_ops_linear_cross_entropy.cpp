// linear_cross_entropy (engine/ops/linear_cross_entropy.cpp) on the CPU against the
// unfused composition cross_entropy(linear(hidden, weight, bias), target): loss and the
// gradients of hidden, weight and bias in float64 (1e-12) and float32 (1e-5), for chunk
// sizes 1, 3, ones that do not divide N, one chunk and automatic; with and without bias;
// mean, sum and none (per-row losses, backward by recomputation); ignore_index rows and
// all rows ignored (NaN mean, zero gradients);
// (B, T, C) hidden; int32 targets; bf16 autocast (loose); a float64 gradcheck; no
// gradient buffers in no-grad mode; the errors; and peak resident memory far below the
// (N, V) logits while the unfused composition needs more than them.
#include <gtest/gtest.h>
#include <malloc.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::expect_throws_with;

std::vector<double> values_of(const Tensor& t) {
  Tensor d = t.detach().to(DType::float64).contiguous();
  const double* p = d.data<double>();
  return std::vector<double>(p, p + d.numel());
}

// Leaf with random_tensor values (times scale) in dtype dt.
Tensor leaf(const Shape& shape, DType dt, uint64_t seed, double scale = 1.0) {
  Tensor t = (test::random_tensor(shape, DType::float64, seed) * scale).to(dt);
  t.requires_grad_(true);
  return t;
}

// Targets in [0, v), with the rows in `ignored` set to ignore.
Tensor targets(int64_t n, int64_t v, uint64_t seed, const std::vector<int64_t>& ignored = {}, int64_t ignore = -100,
               DType dt = DType::int64) {
  std::vector<int64_t> vals = [&] {
    std::vector<int64_t> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<int64_t>((i * 7 + seed * 13 + 3) % v);
    for (int64_t r : ignored) out[static_cast<size_t>(r)] = ignore;
    return out;
  }();
  return tensor<int64_t>(vals, {n}).to(dt);
}

struct Grads {
  Tensor loss, d_hidden, d_weight, d_bias;
};

// Loss and gradients of the fused op (fused = true) or the unfused composition.
Grads run(bool fused, const Tensor& h0, const Tensor& w0, const Tensor& b0, const Tensor& t,
          const LinearCrossEntropyOptions& o) {
  Tensor h = h0.detach().clone().requires_grad_(true);
  Tensor w = w0.detach().clone().requires_grad_(true);
  Tensor b = b0.defined() ? b0.detach().clone().requires_grad_(true) : Tensor();
  Tensor loss = fused ? linear_cross_entropy(h, w, b, t, o)
                      : cross_entropy(linear(h, w, b), t, {.ignore_index = o.ignore_index, .reduction = o.reduction});
  (o.reduction == Reduction::none ? sum(loss * loss.detach()) : loss).backward();  // none: rows weighted by themselves
  return {loss.detach(), h.grad(), w.grad(), b.defined() ? b.grad() : Tensor()};
}

void expect_same(const Tensor& got, const Tensor& want, double rtol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_TRUE(test::all_close(got, values_of(want), rtol, rtol)) << what;
}

void check_against_unfused(DType dt, double rtol, int64_t n, int64_t c, int64_t v, bool with_bias, Reduction red,
                           int64_t chunk, const std::vector<int64_t>& ignored) {
  const std::string what = "dtype " + std::string(dtype_name(dt)) + " N=" + std::to_string(n) +
                           " C=" + std::to_string(c) + " V=" + std::to_string(v) + " bias=" +
                           std::to_string(with_bias) + " sum=" + std::to_string(red == Reduction::sum) +
                           " chunk=" + std::to_string(chunk) + " ignored=" + std::to_string(ignored.size());
  Tensor h = leaf({n, c}, dt, 11 + n);
  Tensor w = leaf({v, c}, dt, 23 + v, 0.5);
  Tensor b = with_bias ? leaf({v}, dt, 37) : Tensor();
  Tensor t = targets(n, v, 5, ignored);
  const LinearCrossEntropyOptions o{.reduction = red, .chunk_rows = chunk};
  Grads f = run(true, h, w, b, t, o), u = run(false, h, w, b, t, o);
  expect_same(f.loss, u.loss, rtol, what + " loss");
  expect_same(f.d_hidden, u.d_hidden, rtol, what + " d_hidden");
  expect_same(f.d_weight, u.d_weight, rtol, what + " d_weight");
  if (with_bias) expect_same(f.d_bias, u.d_bias, rtol, what + " d_bias");
}

TEST(LinearCrossEntropy, MatchesUnfusedFloat64) {
  for (int64_t chunk : {0, 1, 3, 4, 10, 64})
    for (bool bias : {false, true})
      for (Reduction red : {Reduction::mean, Reduction::sum})
        check_against_unfused(DType::float64, 1e-12, 10, 6, 13, bias, red, chunk, {2, 7});
}

TEST(LinearCrossEntropy, MatchesUnfusedFloat32) {
  for (int64_t chunk : {0, 1, 3, 7})
    for (bool bias : {false, true})
      for (Reduction red : {Reduction::mean, Reduction::sum})
        check_against_unfused(DType::float32, 1e-5, 23, 16, 50, bias, red, chunk, {0, 22});
  check_against_unfused(DType::float32, 1e-5, 64, 32, 1000, false, Reduction::mean, 0, {});  // one automatic chunk
}

TEST(LinearCrossEntropy, ReductionNoneRecomputesInBackward) {
  for (int64_t chunk : {0, 1, 3, 4}) {
    for (bool bias : {false, true}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk) + " bias " + std::to_string(bias));
      Tensor h = leaf({2, 5, 6}, DType::float64, 21), w = leaf({13, 6}, DType::float64, 22, 0.5);
      Tensor b = bias ? leaf({13}, DType::float64, 23) : Tensor();
      Tensor t = targets(10, 13, 9, {4}).reshape({2, 5});
      Tensor up = test::random_tensor({2, 5}, DType::float64, 24);  // per-row upstream gradient
      Tensor loss = linear_cross_entropy(h, w, b, t, {.reduction = Reduction::none, .chunk_rows = chunk});
      ASSERT_EQ(loss.shape(), (Shape{2, 5}));
      loss.backward(up);
      Tensor h2 = h.detach().clone().requires_grad_(true), w2 = w.detach().clone().requires_grad_(true);
      Tensor b2 = bias ? b.detach().clone().requires_grad_(true) : Tensor();
      Tensor ref = cross_entropy(linear(h2.reshape({10, 6}), w2, b2), t.reshape({10}), {.reduction = Reduction::none});
      ref.backward(up.reshape({10}));
      expect_same(loss.reshape({10}), ref, 1e-12, "loss rows");
      EXPECT_EQ(loss.detach().select(0, 0).select(0, 4).item(), 0.0);  // the ignored row
      expect_same(h.grad(), h2.grad(), 1e-12, "d_hidden");
      expect_same(w.grad(), w2.grad(), 1e-12, "d_weight");
      if (bias) expect_same(b.grad(), b2.grad(), 1e-12, "d_bias");
    }
  }
  // float32 and bf16 autocast against the unfused composition.
  Tensor h = leaf({9, 8}, DType::float32, 25), w = leaf({30, 8}, DType::float32, 26, 0.3);
  Tensor t = targets(9, 30, 2, {0});
  for (bool bf16 : {false, true}) {
    autocast::Guard guard(bf16 ? DType::bfloat16 : DType::float32);
    Grads f = run(true, h, w, Tensor(), t, {.reduction = Reduction::none, .chunk_rows = 4});
    Grads u = run(false, h, w, Tensor(), t, {.reduction = Reduction::none});
    const double tol = bf16 ? 3e-2 : 1e-5;
    expect_same(f.loss, u.loss, tol, "loss rows");
    expect_same(f.d_hidden, u.d_hidden, tol, "d_hidden");
    expect_same(f.d_weight, u.d_weight, tol, "d_weight");
  }
}

TEST(LinearCrossEntropy, AllRowsIgnoredMeanIsNaNWithZeroGradients) {
  Tensor h = leaf({4, 3}, DType::float64, 1), w = leaf({5, 3}, DType::float64, 2), b = leaf({5}, DType::float64, 3);
  Tensor t = tensor<int64_t>({-1, -1, -1, -1}, {4});
  Grads f = run(true, h, w, b, t, {.ignore_index = -1, .chunk_rows = 3});
  Grads u = run(false, h, w, b, t, {.ignore_index = -1});
  EXPECT_TRUE(std::isnan(f.loss.item()));
  EXPECT_TRUE(std::isnan(u.loss.item()));  // the unfused composition agrees (PyTorch's mean)
  for (const Tensor& g : {f.d_hidden, f.d_weight, f.d_bias}) test::expect_close(g, std::vector<double>(g.numel(), 0.0));
  Grads s = run(true, h, w, b, t, {.ignore_index = -1, .reduction = Reduction::sum});
  EXPECT_EQ(s.loss.item(), 0.0);
}

TEST(LinearCrossEntropy, BatchedHiddenAndInt32Targets) {
  Tensor h = leaf({2, 3, 4}, DType::float64, 4), w = leaf({9, 4}, DType::float64, 5);
  Tensor t64 = targets(6, 9, 2, {4}).reshape({2, 3});
  Grads f = run(true, h, w, Tensor(), t64.to(DType::int32), {.chunk_rows = 4});
  Grads u = run(false, h.reshape({6, 4}), w, Tensor(), t64.reshape({6}), {});
  ASSERT_EQ(f.d_hidden.shape(), (Shape{2, 3, 4}));
  expect_same(f.loss, u.loss, 1e-12, "loss");
  expect_same(f.d_hidden.reshape({6, 4}), u.d_hidden, 1e-12, "d_hidden");
  expect_same(f.d_weight, u.d_weight, 1e-12, "d_weight");
}

TEST(LinearCrossEntropy, OnlySomeInputsRequireGrad) {
  Tensor h = test::random_tensor({5, 4}, DType::float64, 6);  // no grad
  Tensor w = leaf({7, 4}, DType::float64, 7);
  Tensor t = targets(5, 7, 1);
  Tensor loss = linear_cross_entropy(h, w, Tensor(), t, {.chunk_rows = 2});
  loss.backward();
  Grads u = run(false, h, w, Tensor(), t, {});
  expect_same(w.grad(), u.d_weight, 1e-12, "d_weight");
  EXPECT_FALSE(h.grad().defined());
}

TEST(LinearCrossEntropy, UpstreamGradientScales) {
  Tensor h = leaf({6, 3}, DType::float64, 8), w = leaf({4, 3}, DType::float64, 9), b = leaf({4}, DType::float64, 10);
  Tensor t = targets(6, 4, 3, {1});
  Tensor loss = linear_cross_entropy(h, w, b, t, {.chunk_rows = 4}) * 2.5;
  loss.backward();
  Tensor h2 = h.detach().clone().requires_grad_(true), w2 = w.detach().clone().requires_grad_(true),
         b2 = b.detach().clone().requires_grad_(true);
  (cross_entropy(linear(h2, w2, b2), t) * 2.5).backward();
  expect_same(h.grad(), h2.grad(), 1e-12, "d_hidden");
  expect_same(w.grad(), w2.grad(), 1e-12, "d_weight");
  expect_same(b.grad(), b2.grad(), 1e-12, "d_bias");
}

TEST(LinearCrossEntropy, Gradcheck) {
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    for (bool bias : {false, true}) {
      std::vector<Tensor> in{leaf({5, 4}, DType::float64, 12), leaf({6, 4}, DType::float64, 13)};
      if (bias) in.push_back(leaf({6}, DType::float64, 14));
      const Tensor t = targets(5, 6, 4, {3});
      test::GradcheckResult r = test::gradcheck(
          [t, red](const std::vector<Tensor>& x) {
            return linear_cross_entropy(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), t,
                                        {.reduction = red, .chunk_rows = 2});
          },
          in);
      EXPECT_TRUE(r.ok()) << r.report << r.error;
    }
  }
}

TEST(LinearCrossEntropy, AutocastBFloat16MatchesUnfusedLoosely) {
  Tensor h = leaf({12, 16}, DType::float32, 15), w = leaf({40, 16}, DType::float32, 16, 0.3);
  Tensor t = targets(12, 40, 6, {5});
  Grads f, u;
  {
    autocast::Guard guard(DType::bfloat16);
    f = run(true, h, w, Tensor(), t, {.chunk_rows = 5});
    u = run(false, h, w, Tensor(), t, {});
  }
  EXPECT_EQ(f.loss.dtype(), DType::float32);
  EXPECT_EQ(f.d_hidden.dtype(), DType::float32);
  EXPECT_EQ(f.d_weight.dtype(), DType::float32);
  expect_same(f.loss, u.loss, 1e-2, "loss");
  expect_same(f.d_hidden, u.d_hidden, 3e-2, "d_hidden");
  expect_same(f.d_weight, u.d_weight, 3e-2, "d_weight");
  // bf16 activations against float32 weights: autocast casts the weight, as linear does.
  {
    autocast::Guard guard(DType::bfloat16);
    Grads mixed = run(true, h.detach().to(DType::bfloat16), w, Tensor(), t, {.chunk_rows = 5});
    EXPECT_EQ(mixed.d_hidden.dtype(), DType::bfloat16);
    EXPECT_EQ(mixed.d_weight.dtype(), DType::float32);
    EXPECT_NEAR(mixed.loss.item(), f.loss.item(), 1e-6);
  }
  // And close to the float32 result: the low precision is really used, not skipped.
  Grads full = run(true, h, w, Tensor(), t, {});
  EXPECT_NEAR(f.loss.item(), full.loss.item(), 2e-2);
  EXPECT_NE(f.loss.item(), full.loss.item());
}

// Large allocations (>= kCpuCacheMinBytes) made during fn, counted by the allocator's cache.
uint64_t large_allocations(const std::function<void()>& fn) {
  const CpuCacheStats before = cpu_cache_stats();
  fn();
  const CpuCacheStats after = cpu_cache_stats();
  return (after.hits + after.misses) - (before.hits + before.misses);
}

TEST(LinearCrossEntropy, NoGradModeAllocatesNoGradientBuffers) {
  // Chunks of 32 rows x 8192 classes: 1 MiB of float32 logits each, 4 chunks.
  Tensor h = leaf({128, 8}, DType::float32, 17), w = leaf({8192, 8}, DType::float32, 18);
  Tensor t = targets(128, 8192, 7);
  const LinearCrossEntropyOptions o{.chunk_rows = 32};
  Tensor loss_grad, loss_nograd;
  const uint64_t with_grad = large_allocations([&] { loss_grad = linear_cross_entropy(h, w, Tensor(), t, o); });
  const uint64_t without = large_allocations([&] {
    NoGradGuard no_grad;
    loss_nograd = linear_cross_entropy(h, w, Tensor(), t, o);
  });
  EXPECT_FALSE(loss_nograd.requires_grad());
  EXPECT_EQ(loss_nograd.grad_fn(), nullptr);
  EXPECT_NE(loss_grad.grad_fn(), nullptr);
  EXPECT_EQ(loss_nograd.item(), loss_grad.item());
  EXPECT_LE(without, 4u);         // one chunk of logits at a time
  EXPECT_GE(with_grad, 8u);       // plus each chunk's dlogits
  // No input requiring grad: the same cheap path.
  const uint64_t plain = large_allocations([&] { (void)linear_cross_entropy(h.detach(), w.detach(), Tensor(), t, o); });
  EXPECT_LE(plain, 4u);
}

TEST(LinearCrossEntropy, Errors) {
  Tensor h = leaf({4, 3}, DType::float32, 1), w = leaf({5, 3}, DType::float32, 2);
  Tensor t = targets(4, 5, 1);
  expect_throws_with([&] { linear_cross_entropy(h, leaf({5, 2}, DType::float32, 3), Tensor(), t); },
                     {"linear_cross_entropy", "weight of shape", "[5, 2]"});
  expect_throws_with([&] { linear_cross_entropy(h, w.to(DType::float64), Tensor(), t); },
                     {"linear_cross_entropy", "dtype mismatch", "float64"});
  expect_throws_with([&] { linear_cross_entropy(h, w, leaf({4}, DType::float32, 3), t); },
                     {"linear_cross_entropy", "bias of shape", "[4]"});
  expect_throws_with([&] { linear_cross_entropy(h, w, Tensor(), t.to(DType::float32)); },
                     {"linear_cross_entropy", "target dtype"});
  expect_throws_with([&] { linear_cross_entropy(h, w, Tensor(), targets(3, 5, 1)); },
                     {"linear_cross_entropy", "target of shape", "[3]"});
  expect_throws_with([&] { linear_cross_entropy(h, w, Tensor(), tensor<int64_t>({0, 1, 2, 9}, {4})); },
                     {"linear_cross_entropy", "target 9 at row 3", "5 classes"});
  expect_throws_with([&] { linear_cross_entropy(h, w, Tensor(), tensor<int64_t>({0, -3, 2, 1}, {4})); },
                     {"target -3 at row 1"});
  expect_throws_with([&] { linear_cross_entropy(h, w, Tensor(), t, {.chunk_rows = -2}); },
                     {"linear_cross_entropy", "chunk_rows", "-2"});
  expect_throws_with([&] { linear_cross_entropy(h.reshape({12}), w, Tensor(), t); },
                     {"linear_cross_entropy", "hidden"});
  expect_throws_with([&] { linear_cross_entropy(Tensor(), w, Tensor(), t); }, {"undefined hidden"});
}

// ---- peak memory ------------------------------------------------------------------------

// Peak resident set (VmHWM) since the last reset, in bytes; -1 if unreadable.
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
int64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
// Resets VmHWM to the current RSS (Linux >= 4.0); false where not permitted.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// Growth of the peak RSS over the RSS before fn, with no cached or trimmed-away memory
// to hide allocations in.
int64_t peak_growth(const std::function<void()>& fn) {
  cpu_empty_cache();
  malloc_trim(0);
  const int64_t base = rss_bytes();
  if (!reset_peak_rss()) return -1;
  fn();
  return peak_rss_bytes() - base;
}

TEST(LinearCrossEntropy, PeakMemoryFarBelowTheLogits) {
  const size_t limit = cpu_cache_stats().limit_bytes;
  cpu_set_cache_limit(0);  // freed blocks go back to the system: RSS shows live memory
  // A fixed mmap threshold: every block >= 128 KiB is its own mapping, unmapped on free
  // (glibc would otherwise raise the threshold and keep freed blocks in the heap).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  const int64_t n = 512, c = 16, v = 32768;
  const int64_t logits_bytes = n * v * 4;  // 64 MiB of float32 logits
  Tensor h = leaf({n, c}, DType::float32, 19), w = leaf({v, c}, DType::float32, 20, 0.2);
  Tensor t = targets(n, v, 8, {3});
  double fused_loss = 0.0, unfused_loss = 0.0;
  {  // warm-up: the GEMM backend's and the thread pool's own buffers are touched here, not below
    NoGradGuard no_grad;
    (void)linear_cross_entropy(h, w, Tensor(), t, {.chunk_rows = 16});
  }
  const int64_t fused = peak_growth([&] {
    Tensor loss = linear_cross_entropy(h, w, Tensor(), t, {.chunk_rows = 16});  // 2 MiB chunks
    loss.backward();
    fused_loss = loss.item();
  });
  Tensor fused_dw = w.grad().clone();
  w.set_grad(Tensor());
  h.set_grad(Tensor());
  const int64_t unfused = peak_growth([&] {
    Tensor loss = cross_entropy(linear(h, w), t);
    loss.backward();
    unfused_loss = loss.item();
  });
  cpu_set_cache_limit(limit);
  if (fused < 0 || unfused < 0) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  std::cout << "peak RSS growth: fused " << fused / (1 << 20) << " MiB, unfused " << unfused / (1 << 20)
            << " MiB, logits " << logits_bytes / (1 << 20) << " MiB\n";
  EXPECT_NEAR(fused_loss, unfused_loss, 1e-5 * std::abs(unfused_loss));
  EXPECT_TRUE(test::all_close(fused_dw, values_of(w.grad()), 1e-4, 1e-6));
  EXPECT_GT(unfused, logits_bytes);      // the measurement sees the (N, V) tensors ...
  EXPECT_LT(fused, logits_bytes / 4);    // ... and the fused op never holds them
}

}  // namespace
