// CUDA conv2d / conv1d (cuDNN), max / avg / adaptive-avg pooling, batch_norm (cuDNN) and
// group_norm (ctest label gpu) against their CPU twins on the same random inputs,
// forward and backward (gradients through autograd on both devices from the same
// upstream gradient): sizes 1, 7, 1023 and (1 << 20) + 3; groups, depthwise, stride,
// padding, dilation; unbatched, empty-batch, channels-last (permuted), offset
// (misaligned) and non-contiguous-gradient inputs; TF32 on and off; max-pool ties and
// NaN with exact indices; every average-pool divisor rule on both the cuDNN and our
// kernel's path; batch_norm training (cuDNN's fused running update and the op's own
// update for running stats of another dtype or layout) and eval; determinism of the
// reductions. float32 / float64 / bfloat16 / float16. Every test skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "engine/cuda_matmul.h"
#include "engine/determinism.h"
#include "engine/device.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/conv.h"
#include "engine/ops/factory.h"
#include "engine/ops/group_norm.h"
#include "engine/ops/pooling.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::cuda_matches_cpu;
using test::poison_cuda_like;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr Device kCuda = Device::cuda(0);

/// Tolerance relative to the largest |value|: float32 allows for long reductions
/// (conv sums over C * kH * kW, norm statistics over up to 2^20 values).
double rtol_for(DType dt) {
  return test::tolerance_for(
      dt, {.float64 = 1e-10, .float32 = 1e-4, .bfloat16 = 1e-2, .float16 = 2e-3, .integral = 1e-4});
}
constexpr double kTf32Tol = 5e-3;

/// How an input is laid out in memory.
enum class Layout {
  dense,
  channels_last,  ///< (N, C, H, W) viewed from (N, H, W, C) storage
  offset,         ///< images 1.. of a batch of N + 1: dense, data pointer not 16-byte aligned for odd sizes
};

/// A leaf `base` on each device with the same values, and the views the op sees.
struct Input {
  Tensor base_cpu, base_cuda;  // leaves (requires grad)
  Tensor cpu, cuda;            // the op's operands
};

/// Values: standard normal * scale + shift, or (integers) small integers in [0, 10).
Input make_input(const Shape& shape, Layout layout, DType dt, uint64_t seed, double scale = 1.0, double shift = 0.0,
                 bool integers = false) {
  Shape base = shape;
  if (layout == Layout::channels_last) base = {shape[0], shape[2], shape[3], shape[1]};
  if (layout == Layout::offset) base[0] += 1;
  Input in;
  in.base_cpu = integers ? test::random_tensor(base, DType::int64, seed).to(dt).detach()
                         : (test::random_tensor(base, dt, seed) * scale + shift).detach();
  in.base_cuda = in.base_cpu.to(kCuda);
  in.base_cpu.requires_grad_();
  in.base_cuda.requires_grad_();
  auto view = [&](const Tensor& b) {
    if (layout == Layout::channels_last) return b.permute({0, 3, 1, 2});
    if (layout == Layout::offset) return b.narrow(0, 1, shape[0]);
    return b;
  };
  in.cpu = view(in.base_cpu);
  in.cuda = view(in.base_cuda);
  return in;
}

/// Backward on both devices from the same random upstream gradient (CPU-drawn);
/// `expanded` uses one value broadcast over the output (stride-0 gradient).
void backward_both(const Tensor& out_cpu, const Tensor& out_cuda, uint64_t seed, bool expanded = false) {
  Tensor g = expanded ? full({1}, 0.75, {.dtype = out_cpu.dtype()}).expand(out_cpu.shape())
                      : test::random_tensor(out_cpu.shape(), out_cpu.dtype(), seed);
  out_cpu.backward(g);
  Tensor g_cuda = expanded ? full({1}, 0.75, {.dtype = out_cpu.dtype(), .device = kCuda}).expand(out_cpu.shape())
                           : g.to(kCuda);
  out_cuda.backward(g_cuda);
}

/// Each input's CUDA gradient against its CPU gradient (through the views, on the leaves).
void expect_grads_match(std::initializer_list<std::pair<const Input*, const char*>> inputs, double tol) {
  for (const auto& [in, name] : inputs)
    EXPECT_TRUE(cuda_matches_cpu(in->base_cuda.grad(), in->base_cpu.grad(), tol)) << name;
}

/// The bits of the gradients of `leaves` after one backward pass.
std::vector<float> grad_bits(std::initializer_list<Tensor> leaves) {
  std::vector<float> bits;
  for (const Tensor& t : leaves) {
    const std::vector<float> v = t.grad().to_vector<float>();
    bits.insert(bits.end(), v.begin(), v.end());
  }
  return bits;
}

// ---- conv ----------------------------------------------------------------------------

struct ConvCase {
  std::string name;
  Shape x, w;
  bool bias = true;
  Conv2dParams p{};
  Layout layout = Layout::dense;
  bool expanded_grad = false;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"size 1", {1, 1, 1, 1}, {1, 1, 1, 1}},
      {"3x3 pad 1", {2, 3, 7, 7}, {4, 3, 3, 3}, true, {.padding = 1}},
      {"groups, stride, dilation", {3, 4, 9, 11}, {6, 2, 3, 3}, true,
       {.stride = 2, .padding = IntPair(1, 2), .dilation = IntPair(2, 1), .groups = 2}},
      {"depthwise", {2, 8, 10, 10}, {8, 1, 3, 3}, false, {.padding = 1, .groups = 8}},
      {"pointwise", {1, 5, 13, 7}, {3, 5, 1, 1}, false},
      {"5x5 stride 3 dilation 2", {4, 3, 17, 17}, {5, 3, 5, 5}, true, {.stride = 3, .padding = 2, .dilation = 2}},
      {"channels-last input", {2, 6, 8, 9}, {4, 6, 3, 2}, true, {.padding = 1}, Layout::channels_last},
      {"offset (misaligned) input", {2, 3, 5, 5}, {2, 3, 3, 3}, true, {.padding = 1}, Layout::offset},
      {"expanded upstream gradient", {2, 3, 6, 6}, {4, 3, 3, 3}, true, {.stride = 2}, Layout::dense, true},
      {"wide rows 1023", {1, 2, 3, 1023}, {3, 2, 3, 3}, true, {.padding = 1}},
      {"resnet-like", {8, 16, 32, 32}, {32, 16, 3, 3}, true, {.padding = 1}},
      {"empty batch", {0, 3, 5, 5}, {2, 3, 3, 3}, true},
  };
}

void run_conv_case(const ConvCase& c, DType dt, uint64_t& seed, double tol) {
  Input x = make_input(c.x, c.layout, dt, ++seed);
  Input w = make_input(c.w, Layout::dense, dt, ++seed, 0.5);
  Input b = make_input({c.w[0]}, Layout::dense, dt, ++seed);
  Tensor want = conv2d(x.cpu, w.cpu, c.bias ? b.cpu : Tensor(), c.p);
  poison_cuda_like(want);
  Tensor got = conv2d(x.cuda, w.cuda, c.bias ? b.cuda : Tensor(), c.p);
  EXPECT_TRUE(cuda_matches_cpu(got, want, tol)) << "y";
  backward_both(want, got, ++seed, c.expanded_grad);
  expect_grads_match({{&x, "d_x"}, {&w, "d_weight"}}, 4 * tol);
  if (c.bias) expect_grads_match({{&b, "d_bias"}}, 4 * tol);
}

TEST(ConvCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 10;
  for (const ConvCase& c : conv_cases())
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)));
      run_conv_case(c, dt, seed, rtol_for(dt));
    }
}

TEST(ConvCuda, Tf32WhenAllowed) {
  ZAE_SKIP_WITHOUT_CUDA();
  const bool before = cuda::allow_tf32();
  cuda::set_allow_tf32(true);
  uint64_t seed = 500;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name + " float32 tf32");
    run_conv_case(c, DType::float32, seed, kTf32Tol);
  }
  cuda::set_allow_tf32(before);
}

TEST(ConvCuda, Conv1dUnbatchedAndLongSignals) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Case1d {
    Shape x, w;
    Conv1dParams p;
  };
  const Case1d cases[] = {
      {{2, 4, 23}, {6, 2, 5}, {.stride = 2, .padding = 3, .dilation = 2, .groups = 2}},
      {{3, 7}, {5, 3, 3}, {.padding = 1}},  // unbatched (C, L)
      {{1, 1, (1 << 20) + 3}, {2, 1, 3}, {.padding = 1}},
  };
  uint64_t seed = 900;
  for (const Case1d& c : cases)
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " x " + shape_str(c.x) + " w " + shape_str(c.w));
      Input x = make_input(c.x, Layout::dense, dt, ++seed);
      Input w = make_input(c.w, Layout::dense, dt, ++seed, 0.5);
      Input b = make_input({c.w[0]}, Layout::dense, dt, ++seed);
      Tensor want = conv1d(x.cpu, w.cpu, b.cpu, c.p);
      poison_cuda_like(want);
      Tensor got = conv1d(x.cuda, w.cuda, b.cuda, c.p);
      EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
      backward_both(want, got, ++seed);
      expect_grads_match({{&x, "d_x"}, {&w, "d_weight"}, {&b, "d_bias"}}, 4 * rtol_for(dt));
    }
  // 2-D unbatched (C, H, W).
  Input x = make_input({3, 6, 5}, Layout::dense, DType::float32, 7);
  Input w = make_input({2, 3, 3, 3}, Layout::dense, DType::float32, 8);
  EXPECT_TRUE(cuda_matches_cpu(conv2d(x.cuda, w.cuda, Tensor(), {.padding = 1}),
                               conv2d(x.cpu, w.cpu, Tensor(), {.padding = 1}), rtol_for(DType::float32)));
}

TEST(ConvCuda, DeterministicModeGivesTheSameBits) {
  ZAE_SKIP_WITHOUT_CUDA();
  DeterministicGuard det(true);
  Tensor x = test::random_tensor({16, 32, 28, 28}, DType::float32, 3).to(kCuda);
  Tensor g = test::random_tensor({16, 64, 28, 28}, DType::float32, 4).to(kCuda);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Tensor xr = x.detach().requires_grad_();
    Tensor w = (test::random_tensor({64, 32, 3, 3}, DType::float32, 5) * 0.1).to(kCuda).requires_grad_();
    Tensor b = zeros({64}, {.device = kCuda}).requires_grad_();
    conv2d(xr, w, b, {.padding = 1}).backward(g);
    runs.push_back(grad_bits({xr, w, b}));
  }
  EXPECT_EQ(runs[0], runs[1]) << "two deterministic backward passes must give the same bits";
}

TEST(ConvCuda, MixedDevicesAreAClearError) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = ones({1, 2, 4, 4}, {.device = kCuda});
  test::expect_throws_with([&] { conv2d(x, ones({1, 2, 3, 3})); }, {"conv2d", "weight is on cpu", "cuda:0"});
}

// ---- pooling ---------------------------------------------------------------------------

struct PoolCase {
  std::string name;
  Shape x;
  IntPair kernel;
  std::optional<IntPair> stride = std::nullopt;
  IntPair padding = 0;
  IntPair dilation = 1;
  bool ceil_mode = false;
  Layout layout = Layout::dense;
};

std::vector<PoolCase> pool_cases() {
  return {
      {"size 1", {1, 1, 1, 1}, 1},
      {"3x3 stride 2 pad 1", {2, 3, 7, 7}, 3, 2, 1},
      {"rectangular, dilation, ceil", {1, 2, 9, 10}, IntPair(3, 2), IntPair(2, 1), IntPair(1, 0), IntPair(2, 1), true},
      {"ceil mode extra window", {2, 2, 8, 8}, 3, 2, 1, 1, true},
      {"2x2 rows 1023", {2, 4, 6, 1023}, 2},
      {"overlapping stride 1", {1, 3, 12, 5}, IntPair(4, 2), 1, IntPair(2, 1)},
      {"channels-last", {2, 5, 8, 6}, 2, std::nullopt, 0, 1, false, Layout::channels_last},
      {"offset (misaligned)", {2, 3, 5, 5}, 3, 1, 1, 1, false, Layout::offset},
      {"unbatched", {3, 11, 4}, IntPair(3, 2), 2},
      {"long plane", {1, 1, 1, (1 << 20) + 3}, IntPair(1, 4), IntPair(1, 3), IntPair(0, 1)},
      {"empty batch", {0, 3, 4, 4}, 2},
  };
}

TEST(MaxPoolCuda, ValuesIndicesAndGradientsMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 1000;
  for (const PoolCase& c : pool_cases())
    for (DType dt : test::kFloatingDTypes)
      for (bool ties : {false, true}) {
        SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)) + (ties ? " with ties" : ""));
        // With ties: small integers, many equal maxima, so the first-maximum rule decides.
        Input x = make_input(c.x, c.layout, dt, ++seed, 1.0, 0.0, ties);
        auto [want, want_idx] = max_pool2d_with_indices(x.cpu, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
        poison_cuda_like(want);
        auto [got, got_idx] = max_pool2d_with_indices(x.cuda, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
        EXPECT_TRUE(cuda_matches_cpu(got, want, 0.0)) << "values are copied, not computed";
        EXPECT_EQ(got_idx.to_vector<int64_t>(), want_idx.to_vector<int64_t>()) << "indices";
        backward_both(want, got, ++seed);
        EXPECT_TRUE(cuda_matches_cpu(x.base_cuda.grad(), x.base_cpu.grad(), rtol_for(dt))) << "d_x";
      }
}

TEST(MaxPoolCuda, NanPropagatesLikeTheCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const std::vector<double> v = {1, kNaN, 3, 2, 5, 4, kNaN, kNaN, 0, -1, -2, 7, 6, kNaN, 1, 1};
  for (DType dt : test::kFloatingDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor cpu = tensor(v, {1, 1, 4, 4}).to(dt);
    auto [want, want_idx] = max_pool2d_with_indices(cpu, 2, 1);
    auto [got, got_idx] = max_pool2d_with_indices(cpu.to(kCuda), 2, 1);
    EXPECT_TRUE(cuda_matches_cpu(got, want, 0.0));
    EXPECT_EQ(got_idx.to_vector<int64_t>(), want_idx.to_vector<int64_t>());
  }
}

TEST(AvgPoolCuda, EveryDivisorRuleMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Rule {
    bool count_include_pad;
    std::optional<int64_t> divisor;
  };
  // floor-mode cases run on cuDNN for the first three rules; ceil-mode extra windows and
  // an override without count_include_pad run on our kernel.
  const Rule rules[] = {{true, std::nullopt}, {false, std::nullopt}, {true, 5}, {false, 3}};
  uint64_t seed = 2000;
  for (const PoolCase& c : pool_cases()) {
    if (c.dilation.h != 1 || c.dilation.w != 1) continue;  // average pooling has no dilation
    for (DType dt : test::kFloatingDTypes)
      for (const Rule& r : rules) {
        SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)) + " count_include_pad " +
                     std::to_string(r.count_include_pad) + " divisor " + std::to_string(r.divisor.value_or(0)));
        Input x = make_input(c.x, c.layout, dt, ++seed);
        Tensor want = avg_pool2d(x.cpu, c.kernel, c.stride, c.padding, c.ceil_mode, r.count_include_pad, r.divisor);
        poison_cuda_like(want);
        Tensor got = avg_pool2d(x.cuda, c.kernel, c.stride, c.padding, c.ceil_mode, r.count_include_pad, r.divisor);
        EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
        backward_both(want, got, ++seed);
        EXPECT_TRUE(cuda_matches_cpu(x.base_cuda.grad(), x.base_cpu.grad(), rtol_for(dt))) << "d_x";
      }
  }
}

TEST(AdaptiveAvgPoolCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Case {
    Shape x;
    IntPair out;
    Layout layout = Layout::dense;
  };
  const Case cases[] = {
      {{1, 1, 1, 1}, 1},         {{2, 3, 7, 9}, IntPair(3, 4)},  {{1, 2, 1023, 1}, IntPair(10, 1)},
      {{2, 2, 5, 5}, 7},  // overlapping bins (output larger than input)
      {{2, 4, 6, 6}, 1, Layout::channels_last},                  {{3, 5, 7}, IntPair(2, 3)},
      {{0, 2, 4, 4}, 2},
  };
  uint64_t seed = 3000;
  for (const Case& c : cases)
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " x " + shape_str(c.x) + " out " + c.out.tuple_str());
      Input x = make_input(c.x, c.layout, dt, ++seed);
      Tensor want = adaptive_avg_pool2d(x.cpu, c.out);
      poison_cuda_like(want);
      Tensor got = adaptive_avg_pool2d(x.cuda, c.out);
      EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
      backward_both(want, got, ++seed);
      EXPECT_TRUE(cuda_matches_cpu(x.base_cuda.grad(), x.base_cpu.grad(), rtol_for(dt))) << "d_x";
    }
}

// ---- batch_norm ------------------------------------------------------------------------

struct BnCase {
  std::string name;
  Shape x;
  bool affine = true;
  Layout layout = Layout::dense;
};

std::vector<BnCase> bn_cases() {
  return {
      {"(N, C)", {7, 3}},
      {"(N, C, L)", {4, 5, 9}, false},
      {"(N, C, H, W)", {2, 3, 7, 7}},
      {"many channels", {16, 32, 8, 8}},
      {"rows 1023", {3, 2, 1023}},
      {"2^20 + 3 per channel", {1, 1, (1 << 20) + 3}},
      {"channels-last", {4, 6, 5, 3}, true, Layout::channels_last},
      {"offset (misaligned)", {3, 3, 5, 5}, true, Layout::offset},
  };
}

/// How the running statistics are held.
enum class Running { none, stats_dtype, float64_strided };

TEST(BatchNormCuda, TrainingAndEvalMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 4000;
  for (const BnCase& c : bn_cases())
    for (DType dt : test::kFloatingDTypes)
      for (bool training : {true, false})
        for (Running running : {Running::none, Running::stats_dtype, Running::float64_strided}) {
          if (!training && running == Running::none) continue;  // eval needs running stats
          SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)) + (training ? " training" : " eval") +
                       " running " + std::to_string(static_cast<int>(running)));
          const int64_t C = c.x[1];
          Input x = make_input(c.x, c.layout, dt, ++seed, 2.0, 0.5);
          Input w = make_input({C}, Layout::dense, dt, ++seed, 0.5, 1.0);
          Input b = make_input({C}, Layout::dense, dt, ++seed);
          Tensor rm_cpu, rv_cpu, rm_cuda, rv_cuda;  // running stats: same values on both devices
          if (running != Running::none) {
            const DType sd = running == Running::float64_strided ? DType::float64
                             : dt == DType::float64              ? DType::float64
                                                                 : DType::float32;
            const int64_t step = running == Running::float64_strided ? 2 : 1;
            Tensor m = test::random_tensor({C * step}, sd, ++seed);
            Tensor v = test::random_tensor({C * step}, sd, ++seed).abs() + 0.5;
            rm_cpu = m.slice(0, 0, C * step, step);
            rv_cpu = v.slice(0, 0, C * step, step);
            rm_cuda = m.to(kCuda).slice(0, 0, C * step, step);
            rv_cuda = v.to(kCuda).slice(0, 0, C * step, step);
          }
          const double momentum = 0.3, eps = 1e-5;
          Tensor want = batch_norm(x.cpu, rm_cpu, rv_cpu, c.affine ? w.cpu : Tensor(), c.affine ? b.cpu : Tensor(),
                                   training, momentum, eps);
          poison_cuda_like(want);
          Tensor got = batch_norm(x.cuda, rm_cuda, rv_cuda, c.affine ? w.cuda : Tensor(),
                                  c.affine ? b.cuda : Tensor(), training, momentum, eps);
          const double tol = rtol_for(dt);
          EXPECT_TRUE(cuda_matches_cpu(got, want, tol)) << "y";
          if (running != Running::none) {
            EXPECT_TRUE(cuda_matches_cpu(rm_cuda, rm_cpu, tol)) << "running_mean";
            EXPECT_TRUE(cuda_matches_cpu(rv_cuda, rv_cpu, tol)) << "running_var";
          }
          backward_both(want, got, ++seed);
          expect_grads_match({{&x, "d_x"}}, 4 * tol);
          if (c.affine) expect_grads_match({{&w, "d_weight"}, {&b, "d_bias"}}, 4 * tol);
        }
}

TEST(BatchNormCuda, CumulativeMomentumAndEmptyBatch) {
  ZAE_SKIP_WITHOUT_CUDA();
  // momentum 1 / k on the k-th batch: the running stats become the average of the batch
  // statistics, on both devices.
  Tensor rm_cpu = zeros({4}), rv_cpu = ones({4});
  Tensor rm_cuda = rm_cpu.to(kCuda), rv_cuda = rv_cpu.to(kCuda);
  for (int k = 1; k <= 3; ++k) {
    Tensor x = test::random_tensor({5, 4, 3}, DType::float32, 60 + static_cast<uint64_t>(k)) * static_cast<double>(k);
    batch_norm(x, rm_cpu, rv_cpu, Tensor(), Tensor(), true, 1.0 / k);
    batch_norm(x.to(kCuda), rm_cuda, rv_cuda, Tensor(), Tensor(), true, 1.0 / k);
  }
  EXPECT_TRUE(cuda_matches_cpu(rm_cuda, rm_cpu, 1e-5));
  EXPECT_TRUE(cuda_matches_cpu(rv_cuda, rv_cpu, 1e-5));
  // An empty batch: empty output, running stats untouched, zero parameter gradients.
  Tensor w = ones({4}, {.device = kCuda}).requires_grad_();
  Tensor b = zeros({4}, {.device = kCuda}).requires_grad_();
  Tensor before = rm_cuda.cpu();
  Tensor y = batch_norm(zeros({0, 4, 3}, {.device = kCuda}), rm_cuda, rv_cuda, w, b, true);
  EXPECT_EQ(y.shape(), (Shape{0, 4, 3}));
  EXPECT_EQ(rm_cuda.to_vector<float>(), before.to_vector<float>());
  y.backward(zeros({0, 4, 3}, {.device = kCuda}));
  EXPECT_EQ(w.grad().to_vector<float>(), std::vector<float>(4, 0.0f));
  EXPECT_EQ(b.grad().to_vector<float>(), std::vector<float>(4, 0.0f));
}

// ---- group_norm ------------------------------------------------------------------------

struct GnCase {
  Shape x;
  int64_t groups;
  bool affine = true;
  Layout layout = Layout::dense;
};

TEST(GroupNormCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const GnCase cases[] = {
      {{1, 1, 1}, 1},
      {{4, 8}, 4},  // S = 1
      {{2, 6, 5, 5}, 3},
      {{3, 4, 1023}, 2, false},
      {{2, 32, 8, 8}, 32},  // one channel per group
      {{2, 64, 7, 7}, 1},   // one group of 64 channels
      {{1, 2, (1 << 19) + 3}, 1},
      {{2, 6, 4, 5}, 2, true, Layout::channels_last},
      {{2, 3, 3, 3}, 3, true, Layout::offset},
      {{0, 4, 3}, 2},
  };
  uint64_t seed = 5000;
  for (const GnCase& c : cases)
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " x " + shape_str(c.x) + " groups " + std::to_string(c.groups) +
                   (c.affine ? " affine" : ""));
      const int64_t C = c.x[1];
      Input x = make_input(c.x, c.layout, dt, ++seed, 2.0, 0.5);
      Input w = make_input({C}, Layout::dense, dt, ++seed, 0.5, 1.0);
      Input b = make_input({C}, Layout::dense, dt, ++seed);
      Tensor want = group_norm(x.cpu, c.groups, c.affine ? w.cpu : Tensor(), c.affine ? b.cpu : Tensor(), 1e-5);
      poison_cuda_like(want);
      Tensor got = group_norm(x.cuda, c.groups, c.affine ? w.cuda : Tensor(), c.affine ? b.cuda : Tensor(), 1e-5);
      const double tol = rtol_for(dt);
      EXPECT_TRUE(cuda_matches_cpu(got, want, tol)) << "y";
      backward_both(want, got, ++seed);
      expect_grads_match({{&x, "d_x"}}, 4 * tol);
      if (c.affine) expect_grads_match({{&w, "d_weight"}, {&b, "d_bias"}}, 4 * tol);
    }
}

TEST(GroupNormCuda, GradientsAreDeterministic) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({8, 32, 16, 16}, DType::float32, 71).to(kCuda);
  Tensor g = test::random_tensor({8, 32, 16, 16}, DType::float32, 72).to(kCuda);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Tensor xr = x.detach().requires_grad_();
    Tensor w = ones({32}, {.device = kCuda}).requires_grad_();
    Tensor b = zeros({32}, {.device = kCuda}).requires_grad_();
    group_norm(xr, 8, w, b).backward(g);
    runs.push_back(grad_bits({xr, w, b}));
  }
  EXPECT_EQ(runs[0], runs[1]) << "two identical backward passes must give the same bits";
}

}  // namespace
