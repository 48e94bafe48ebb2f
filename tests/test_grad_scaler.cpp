// nn/optim/grad_scaler: dynamic loss scaling as torch.amp.GradScaler. The scaled loss
// and its gradient; unscale_ in PyTorch's arithmetic (multiply by float32(1/S), per
// dtype); inf / -inf / NaN detection in any parameter; skipped steps leave parameters and
// optimizer state alone; backoff, growth and its float32 cap; the stage errors; the
// disabled no-op; state round trips; option validation; and a float16 forward whose
// backward overflows at scripted steps, checked against the scale sequence PyTorch's
// rules give (worked out by hand below).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/adam.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/sgd.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using optim::GradScaler;
using optim::GradScalerOptions;
using test::expect_throws_with;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor leaf(std::initializer_list<double> values, DType dt = DType::float32) {
  Tensor t = tensor(values, {}, {.dtype = dt});
  t.requires_grad_();
  return t;
}

// Gives `p` the gradient `values` (in p's dtype, on its device).
void set_grad(Tensor& p, std::initializer_list<double> values) {
  p.set_grad(tensor(values, {}, {.dtype = p.dtype()}).to(p.device()));
}

std::vector<double> grad_values(const Tensor& p) { return p.grad().to_vector<double>(); }

// ---------------------------------------------------------------------------------------
// scale()

TEST(GradScaler, ScaleMultipliesTheLossAndItsGradientFlowsScaled) {
  GradScaler scaler;  // S = 65536
  Tensor p = leaf({0.5, -1.25, 3.0});
  Tensor loss = (p * p).sum();  // 1.5625 + 0.25 + 9 = 10.8125
  Tensor scaled = scaler.scale(loss);
  EXPECT_EQ(scaled.dtype(), DType::float32);
  EXPECT_EQ(scaled.item(), 10.8125 * 65536.0);
  scaled.backward();
  EXPECT_EQ(grad_values(p), (std::vector<double>{65536.0, -2.5 * 65536.0, 6.0 * 65536.0}));
}

TEST(GradScaler, ScaleRejectsUndefinedAndIntegerLosses) {
  GradScaler scaler;
  expect_throws_with([&] { scaler.scale(Tensor()); }, {"GradScaler::scale", "undefined"});
  expect_throws_with([&] { scaler.scale(tensor({1.0}, {}, {.dtype = DType::int64})); },
                     {"GradScaler::scale", "floating", "int64"});
}

// ---------------------------------------------------------------------------------------
// unscale_: PyTorch's arithmetic

TEST(GradScaler, UnscaleMultipliesFloat32GradientsByTheFloat32Reciprocal) {
  // S = 3: inv = float32(1 / 3.0) = 0.3333333432674408; PyTorch multiplies by it in
  // float32. Dividing by 3 instead gives a different float32 for some elements.
  GradScaler scaler({.init_scale = 3.0});
  const float inv = static_cast<float>(1.0 / 3.0);
  Tensor g = test::random_tensor({1000}, DType::float32, 7);
  Tensor p = zeros({1000}, {.requires_grad = true});
  p.set_grad(g.clone());
  optim::SGD opt({p}, {.lr = 0.1});
  scaler.unscale_(opt);
  std::vector<float> in = g.to_vector<float>();
  std::vector<float> out = p.grad().to_vector<float>();
  int differs_from_division = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(out[i], in[i] * inv) << "element " << i;
    if (in[i] * inv != in[i] / 3.0f) ++differs_from_division;
  }
  EXPECT_GT(differs_from_division, 0) << "the data cannot tell multiply-by-reciprocal from division";
  EXPECT_FALSE(scaler.found_inf());
}

TEST(GradScaler, UnscaleFloat64AndBFloat16GradientsAsPyTorch) {
  GradScaler scaler({.init_scale = 3.0});
  const float inv = static_cast<float>(1.0 / 3.0);
  Tensor g64 = test::random_tensor({200}, DType::float64, 11);
  Tensor g16 = test::random_tensor({200}, DType::float32, 12).to(DType::bfloat16);
  Tensor p64 = zeros({200}, {.dtype = DType::float64, .requires_grad = true});
  Tensor pbf = zeros({200}, {.dtype = DType::bfloat16, .requires_grad = true});
  p64.set_grad(g64.clone());
  pbf.set_grad(g16.clone());
  optim::SGD opt({p64, pbf}, {.lr = 0.1});
  scaler.unscale_(opt);
  // float64: g * double(float32 inv), in float64.
  std::vector<double> in64 = g64.to_vector<double>();
  std::vector<double> out64 = p64.grad().to_vector<double>();
  for (size_t i = 0; i < in64.size(); ++i) ASSERT_EQ(out64[i], in64[i] * static_cast<double>(inv)) << i;
  // bfloat16: float32(g) * inv rounded to float32, then to bfloat16.
  std::vector<float> in_bf = g16.to_vector<float>();
  std::vector<float> prod(in_bf.size());
  for (size_t i = 0; i < in_bf.size(); ++i) prod[i] = in_bf[i] * inv;
  std::vector<double> want = tensor(prod, {static_cast<int64_t>(prod.size())}).to(DType::bfloat16).to_vector<double>();
  EXPECT_EQ(pbf.grad().to_vector<double>(), want);
}

TEST(GradScaler, PowerOfTwoScaleUnscalesExactly) {
  GradScaler scaler;
  Tensor p = leaf({0.0, 0.0, 0.0});
  set_grad(p, {65536.0 * 0.1f, -65536.0 * 3.0, 65536.0 * 1e-30f});
  optim::SGD opt({p}, {.lr = 0.1});
  scaler.unscale_(opt);
  EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>{0.1f, -3.0f, 1e-30f}));
}

// ---------------------------------------------------------------------------------------
// inf / NaN detection and skipped steps

TEST(GradScaler, InfMinusInfAndNaNInAnyParameterAreFound) {
  for (double bad : {kInf, -kInf, kNaN}) {
    for (int where = 0; where < 3; ++where) {
      GradScaler scaler;
      std::vector<Tensor> ps = {leaf({1.0, 2.0}), leaf({3.0, 4.0, 5.0}), leaf({6.0})};
      set_grad(ps[0], {1.0, 2.0});
      set_grad(ps[1], {3.0, 4.0, 5.0});
      set_grad(ps[2], {6.0});
      Tensor& victim = ps[static_cast<size_t>(where)];
      std::vector<double> g = grad_values(victim);
      g.back() = bad;
      victim.set_grad(tensor(g, {}, {.dtype = DType::float32}));
      optim::SGD opt(ps, {.lr = 0.1});
      scaler.unscale_(opt);
      EXPECT_TRUE(scaler.found_inf()) << "value " << bad << " in parameter " << where;
    }
  }
  // A clean set (with an empty gradient and a parameter without one) finds nothing.
  GradScaler scaler;
  Tensor a = leaf({1e30, -1e30}), e = zeros({0}, {.requires_grad = true}), none = leaf({1.0});
  set_grad(a, {3e38, -3e38});  // huge but finite: sum(|g|) would overflow, the check must not
  e.set_grad(zeros({0}));
  optim::SGD opt({a, e, none}, {.lr = 0.1});
  scaler.unscale_(opt);
  EXPECT_FALSE(scaler.found_inf());
}

TEST(GradScaler, SkippedStepLeavesParametersAndAdamStateUntouched) {
  GradScaler scaler;
  Tensor w = leaf({1.0, -2.0, 3.0});
  Tensor b = leaf({0.5});
  optim::Adam opt({w, b}, {.lr = 0.01});

  // Step 1: clean.
  set_grad(w, {65536.0, 65536.0, -65536.0});
  set_grad(b, {32768.0});
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
  EXPECT_EQ(opt.state(w).at("step").item(), 1.0);

  // Step 2: a NaN in b's gradient.
  std::vector<double> w_before = w.to_vector<double>(), b_before = b.to_vector<double>();
  Tensor m_before = opt.state(w).at("exp_avg").clone(), v_before = opt.state(w).at("exp_avg_sq").clone();
  set_grad(w, {1.0, 2.0, 3.0});
  set_grad(b, {kNaN});
  EXPECT_FALSE(scaler.step(opt));
  EXPECT_TRUE(scaler.found_inf());
  EXPECT_EQ(w.to_vector<double>(), w_before);
  EXPECT_EQ(b.to_vector<double>(), b_before);
  EXPECT_EQ(opt.state(w).at("step").item(), 1.0);
  EXPECT_EQ(opt.state(b).at("step").item(), 1.0);
  EXPECT_EQ(opt.state(w).at("exp_avg").to_vector<double>(), m_before.to_vector<double>());
  EXPECT_EQ(opt.state(w).at("exp_avg_sq").to_vector<double>(), v_before.to_vector<double>());
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 32768.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_FALSE(scaler.found_inf());  // update() forgets the step

  // Step 3: clean again, Adam moves on from step 1.
  set_grad(w, {32768.0, 32768.0, 32768.0});
  set_grad(b, {32768.0});
  EXPECT_TRUE(scaler.step(opt));
  EXPECT_EQ(opt.state(w).at("step").item(), 2.0);
  EXPECT_NE(w.to_vector<double>(), w_before);
}

TEST(GradScaler, DisabledScalerIsANoOp) {
  GradScaler scaler({.enabled = false});
  EXPECT_FALSE(scaler.enabled());
  EXPECT_EQ(scaler.get_scale(), 1.0);
  Tensor p = leaf({1.0, 2.0});
  Tensor loss = (p * p).sum();
  EXPECT_TRUE(scaler.scale(loss).is_same(loss));
  optim::SGD opt({p}, {.lr = 0.5});
  set_grad(p, {2.0, kInf});
  scaler.unscale_(opt);
  scaler.unscale_(opt);  // no stage checks either
  EXPECT_EQ(grad_values(p), (std::vector<double>{2.0, kInf}));
  EXPECT_FALSE(scaler.found_inf());
  EXPECT_TRUE(scaler.step(opt));  // steps even on inf, as PyTorch's disabled scaler
  EXPECT_EQ(p.to_vector<double>()[0], 0.0);
  EXPECT_EQ(p.to_vector<double>()[1], -kInf);
  scaler.update();
  scaler.update(8.0);
  EXPECT_EQ(scaler.get_scale(), 1.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_EQ(scaler.state().scale, 1.0);
  EXPECT_EQ(scaler.state().growth_tracker, 0);
  scaler.load_state({.scale = 4.0, .growth_tracker = 3});  // ignored
  EXPECT_EQ(scaler.get_scale(), 1.0);
}

// ---------------------------------------------------------------------------------------
// update(): backoff, growth, cap

// One clean or inf step on a fresh gradient of `p`, then update().
void run_step(GradScaler& scaler, optim::Optimizer& opt, Tensor& p, bool inf) {
  set_grad(p, {1.0, inf ? kInf : 2.0});
  scaler.step(opt);
  scaler.update();
}

TEST(GradScaler, GrowsAfterGrowthIntervalCleanSteps) {
  GradScaler scaler({.init_scale = 1024.0, .growth_interval = 3});
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.1});
  std::vector<double> scales;
  std::vector<int64_t> trackers;
  for (int i = 0; i < 7; ++i) {
    run_step(scaler, opt, p, false);
    scales.push_back(scaler.get_scale());
    trackers.push_back(scaler.growth_tracker());
  }
  EXPECT_EQ(scales, (std::vector<double>{1024, 1024, 2048, 2048, 2048, 4096, 4096}));
  EXPECT_EQ(trackers, (std::vector<int64_t>{1, 2, 0, 1, 2, 0, 1}));
}

TEST(GradScaler, FactorsAreAppliedInFloat64AndRoundedToFloat32) {
  // S = 1000, backoff 0.3: float32(1000 * 0.3) = 300 (float64 product 300.00000000000006).
  // Then growth 1.1 at interval 1: float32(300 * 1.1) = float32(330.00000000000006) = 330.
  GradScaler scaler({.init_scale = 1000.0, .growth_factor = 1.1, .backoff_factor = 0.3, .growth_interval = 1});
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.1});
  run_step(scaler, opt, p, true);
  EXPECT_EQ(scaler.get_scale(), static_cast<double>(static_cast<float>(1000.0 * 0.3)));
  run_step(scaler, opt, p, false);
  const float s1 = static_cast<float>(1000.0 * 0.3);
  EXPECT_EQ(scaler.get_scale(), static_cast<double>(static_cast<float>(static_cast<double>(s1) * 1.1)));
  // init_scale is rounded to float32 too.
  GradScaler odd({.init_scale = 0.1});
  EXPECT_EQ(odd.get_scale(), static_cast<double>(0.1f));
}

TEST(GradScaler, GrowthStopsBelowFloat32Overflow) {
  const double big = std::ldexp(1.0, 127);  // 2^128 overflows float32
  GradScaler scaler({.init_scale = big, .growth_interval = 1});
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.1});
  run_step(scaler, opt, p, false);
  EXPECT_EQ(scaler.get_scale(), big);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(GradScaler, UpdateWithANewScale) {
  GradScaler scaler({.growth_interval = 5});
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.1});
  run_step(scaler, opt, p, false);
  run_step(scaler, opt, p, false);
  scaler.update(1000.0);  // no inf check needed; the tracker stays
  EXPECT_EQ(scaler.get_scale(), 1000.0);
  EXPECT_EQ(scaler.growth_tracker(), 2);
  expect_throws_with([&] { scaler.update(0.0); }, {"new_scale", "0"});
  expect_throws_with([&] { scaler.update(kNaN); }, {"new_scale", "nan"});
  EXPECT_EQ(scaler.get_scale(), 1000.0);
}

TEST(GradScaler, ScaleUnderflowIsAClearError) {
  GradScaler scaler({.init_scale = 1e-45});  // the smallest float32 subnormal: 1/S overflows
  Tensor p = leaf({0.0, 0.0});
  set_grad(p, {1.0, 2.0});
  optim::SGD opt({p}, {.lr = 0.1});
  expect_throws_with([&] { scaler.unscale_(opt); }, {"GradScaler::unscale_", "overflows float32"});
  EXPECT_EQ(grad_values(p), (std::vector<double>{1.0, 2.0}));
}

// ---------------------------------------------------------------------------------------
// Stage errors

TEST(GradScaler, StageErrors) {
  GradScaler scaler({.init_scale = 4.0});
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.1});
  set_grad(p, {8.0, 16.0});
  scaler.unscale_(opt);
  expect_throws_with([&] { scaler.unscale_(opt); }, {"GradScaler::unscale_", "already called", "SGD"});
  EXPECT_EQ(grad_values(p), (std::vector<double>{2.0, 4.0}));  // divided once
  EXPECT_TRUE(scaler.step(opt));                               // does not unscale again
  EXPECT_EQ(grad_values(p), (std::vector<double>{2.0, 4.0}));
  test::expect_close(p, {-0.2, -0.4}, 1e-6);
  expect_throws_with([&] { scaler.unscale_(opt); }, {"GradScaler::unscale_", "after step()"});
  expect_throws_with([&] { scaler.step(opt); }, {"GradScaler::step", "already been called"});
  scaler.update();
  expect_throws_with([&] { scaler.update(); }, {"GradScaler::update", "no inf/NaN check"});
  set_grad(p, {4.0, 4.0});
  scaler.unscale_(opt);  // a new step
  EXPECT_EQ(grad_values(p), (std::vector<double>{1.0, 1.0}));
}

TEST(GradScaler, Float16GradientsAreRefusedAndNothingChanges) {
  GradScaler scaler;
  Tensor a = leaf({0.0});
  Tensor h = leaf({0.0}, DType::float16);
  set_grad(a, {65536.0});
  set_grad(h, {1.0});
  optim::SGD opt({a, h}, {.lr = 0.1});
  expect_throws_with([&] { scaler.unscale_(opt); }, {"GradScaler::unscale_", "float16 gradient", "parameter 1"});
  EXPECT_EQ(grad_values(a), (std::vector<double>{65536.0}));
  h.set_grad(Tensor());
  scaler.unscale_(opt);  // still ready: not "already called"
  EXPECT_EQ(grad_values(a), (std::vector<double>{1.0}));
}

TEST(GradScaler, StepWithoutGradientsIsAnErrorAndRetryWorks) {
  GradScaler scaler;
  Tensor p = leaf({0.0});
  optim::SGD opt({p}, {.lr = 1.0});
  expect_throws_with([&] { scaler.step(opt); }, {"GradScaler::step", "no inf/NaN check", "SGD"});
  expect_throws_with([&] { scaler.update(); }, {"GradScaler::update", "no inf/NaN check"});
  set_grad(p, {65536.0});
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();
  EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{-1.0}));
}

TEST(GradScaler, TwoOptimizersShareOneUpdate) {
  GradScaler scaler({.growth_interval = 1});
  Tensor a = leaf({0.0}), b = leaf({0.0});
  optim::SGD opt_a({a}, {.lr = 1.0}), opt_b({b}, {.lr = 1.0});
  set_grad(a, {65536.0});
  set_grad(b, {kInf});
  EXPECT_TRUE(scaler.step(opt_a));
  EXPECT_FALSE(scaler.step(opt_b));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{-1.0}));
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{0.0}));
  scaler.update();  // one inf anywhere: back off, no growth
  EXPECT_EQ(scaler.get_scale(), 32768.0);
}

// ---------------------------------------------------------------------------------------
// State and options

TEST(GradScaler, StateRoundTripContinuesTheSameSequence) {
  GradScalerOptions o{.init_scale = 256.0, .growth_interval = 3};
  GradScaler first(o);
  Tensor p = leaf({0.0, 0.0});
  optim::SGD opt({p}, {.lr = 0.0});
  for (bool inf : {false, true, false, false}) run_step(first, opt, p, inf);
  GradScaler::State s = first.state();
  EXPECT_EQ(s.scale, 128.0);
  EXPECT_EQ(s.growth_tracker, 2);
  GradScaler second(o);
  second.load_state(s);
  EXPECT_EQ(second.get_scale(), 128.0);
  EXPECT_EQ(second.growth_tracker(), 2);
  for (bool inf : {false, false, true, false}) {
    run_step(first, opt, p, inf);
    run_step(second, opt, p, inf);
    EXPECT_EQ(first.get_scale(), second.get_scale());
    EXPECT_EQ(first.growth_tracker(), second.growth_tracker());
  }
  EXPECT_EQ(second.get_scale(), 128.0);  // 128 -> 256 (grow) -> 256 -> 128 (inf) -> 128
  expect_throws_with([&] { second.load_state({.scale = -1.0, .growth_tracker = 0}); }, {"load_state", "-1"});
  expect_throws_with([&] { second.load_state({.scale = kInf, .growth_tracker = 0}); }, {"load_state", "inf"});
  expect_throws_with([&] { second.load_state({.scale = 1e39, .growth_tracker = 0}); }, {"load_state", "1e+39"});
  expect_throws_with([&] { second.load_state({.scale = 2.0, .growth_tracker = -4}); }, {"growth_tracker", "-4"});
  EXPECT_EQ(second.get_scale(), 128.0);
  EXPECT_EQ(second.growth_tracker(), 1);
}

TEST(GradScaler, BadOptionsAreErrorsNamingTheValue) {
  auto bad = [](GradScalerOptions o, std::vector<std::string> words) {
    expect_throws_with([&] { GradScaler s(o); }, words);
  };
  bad({.init_scale = 0.0}, {"init_scale", "> 0", "0"});
  bad({.init_scale = -2.0}, {"init_scale", "-2"});
  bad({.init_scale = kNaN}, {"init_scale", "nan"});
  bad({.init_scale = kInf}, {"init_scale", "inf"});
  bad({.init_scale = 1e39}, {"init_scale", "1e+39", "float32"});
  bad({.init_scale = 1e-50}, {"init_scale", "1e-50", "float32"});
  bad({.growth_factor = 1.0}, {"growth_factor", "> 1", "1"});
  bad({.growth_factor = 0.5}, {"growth_factor", "0.5"});
  bad({.growth_factor = kInf}, {"growth_factor", "inf"});
  bad({.backoff_factor = 0.0}, {"backoff_factor", "(0, 1)", "0"});
  bad({.backoff_factor = 1.0}, {"backoff_factor", "1"});
  bad({.backoff_factor = kNaN}, {"backoff_factor", "nan"});
  bad({.growth_interval = 0}, {"growth_interval", ">= 1", "0"});
  bad({.growth_interval = -3}, {"growth_interval", "-3"});
  bad({.growth_factor = 0.5, .enabled = false}, {"growth_factor", "0.5"});  // checked even when disabled
}

// ---------------------------------------------------------------------------------------
// A float16 forward with float32 master weights

// W (4, 3) float32; forward y = x16 @ W16^T in float16, loss = mean(float32(y)).
// d loss / d y = S / 16 (a power of two), and dW = dy^T @ x in float16 (float32
// accumulation): with |x| <= 0.5 it stays far below 65504; with x = 1000 it is
// S / 16 * 4 * 1000 >= 16384 * 4000 / 16 > 65504, an inf in float16.
TEST(GradScaler, Float16ForwardFollowsPyTorchsScaleSequence) {
  Tensor w = test::random_tensor({4, 3}, DType::float32, 3).mul_(0.5);
  w.requires_grad_();
  optim::SGD opt({w}, {.lr = 0.1});
  GradScaler scaler({.growth_interval = 3});

  auto loss_of = [](const Tensor& weight, const Tensor& x16) {
    return matmul(x16, weight.to(DType::float16).t()).to(DType::float32).mean();
  };
  // Infs at steps 2 and 5 (1-based). PyTorch's rules, by hand:
  //   1 clean: tracker 1           S 65536
  //   2 inf:   S *= 0.5, tracker 0 S 32768
  //   3, 4 clean: tracker 1, 2     S 32768
  //   5 inf:   S 16384, tracker 0
  //   6, 7 clean: tracker 1, 2     S 16384
  //   8 clean: tracker 3 = interval: S 32768, tracker 0
  //   9, 10 clean: tracker 1, 2    S 32768
  //   11 clean: S 65536, tracker 0
  const std::vector<double> want_scale = {65536, 32768, 32768, 32768, 16384, 16384,
                                          16384, 32768, 32768, 32768, 65536};
  const std::vector<int64_t> want_tracker = {1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  for (int step = 1; step <= 11; ++step) {
    const bool overflow = step == 2 || step == 5;
    Tensor x = overflow ? full({4, 3}, 1000.0) : clamp(test::random_tensor({4, 3}, DType::float32, 100 + step), -0.5, 0.5);
    Tensor x16 = x.to(DType::float16);

    // The gradient of the unscaled loss, for comparison.
    Tensor ref = w.detach().clone();
    ref.requires_grad_();
    loss_of(ref, x16).backward();

    opt.zero_grad();
    scaler.scale(loss_of(w, x16)).backward();
    ASSERT_EQ(w.grad().dtype(), DType::float32);
    std::vector<double> before = w.to_vector<double>();
    scaler.unscale_(opt);
    EXPECT_EQ(scaler.found_inf(), overflow) << "step " << step;
    if (!overflow) {
      // S is a power of two and nothing over- or underflows: exactly the unscaled gradient.
      EXPECT_EQ(w.grad().to_vector<double>(), ref.grad().to_vector<double>()) << "step " << step;
    }
    EXPECT_EQ(scaler.step(opt), !overflow) << "step " << step;
    if (overflow) EXPECT_EQ(w.to_vector<double>(), before) << "step " << step;
    else EXPECT_NE(w.to_vector<double>(), before) << "step " << step;
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), want_scale[static_cast<size_t>(step - 1)]) << "step " << step;
    EXPECT_EQ(scaler.growth_tracker(), want_tracker[static_cast<size_t>(step - 1)]) << "step " << step;
  }
  EXPECT_EQ(w.dtype(), DType::float32);  // master weights stay float32
}

}  // namespace
