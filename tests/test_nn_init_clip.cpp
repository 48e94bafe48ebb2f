// nn::init (statistics on large tensors, bounds, fans, gains, determinism, in-place
// no-grad semantics, errors) and gradient clipping (clip_grad_norm_ for p = 2, inf,
// 1, 3 and clip_grad_value_ against PyTorch's numbers in
// tests/fixtures/layers_clip.safetensors; non-finite norms; skipped parameters).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/zae.h"
#include "nn/nn.h"
#include "tests/support/fixture.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using namespace zae::nn;
using zae::test::all_close;
using zae::test::expect_throws_with;

struct Stats {
  double mean, sd, min, max;
};

Stats stats_of(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
  for (double x : v) {
    sum += x;
    sq += x * x;
    mn = std::min(mn, x);
    mx = std::max(mx, x);
  }
  const double n = static_cast<double>(v.size()), mean = sum / n;
  return {mean, std::sqrt(sq / n - mean * mean), mn, mx};
}

// Checks mean and sd against expectations, with tolerances of 5 standard errors.
void expect_moments(const Tensor& t, double mean, double sd) {
  Stats s = stats_of(t);
  const double n = static_cast<double>(t.numel());
  EXPECT_NEAR(s.mean, mean, 5.0 * sd / std::sqrt(n)) << "mean";
  EXPECT_NEAR(s.sd, sd, 5.0 * sd / std::sqrt(2.0 * n)) << "sd";
}

void expect_uniform(const Tensor& t, double a, double b) {
  Stats s = stats_of(t);
  EXPECT_GE(s.min, a);
  EXPECT_LE(s.max, b);
  EXPECT_LT(s.min, a + 0.001 * (b - a));
  EXPECT_GT(s.max, b - 0.001 * (b - a));
  expect_moments(t, (a + b) / 2, (b - a) / std::sqrt(12.0));
}

double phi(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }
double cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }

// ------------------------------------------------------------------ distributions

TEST(Init, UniformAndNormalStatistics) {
  Tensor t = empty({400, 500});
  init::uniform_(t, -0.5, 1.5);
  expect_uniform(t, -0.5, 1.5);
  Tensor d = empty({200000}, {.dtype = DType::float64});
  init::uniform_(d);
  expect_uniform(d, 0.0, 1.0);
  init::normal_(t, 2.0, 3.0);
  expect_moments(t, 2.0, 3.0);
  init::normal_(d);
  expect_moments(d, 0.0, 1.0);
  // Reduced-precision targets keep their dtype.
  Tensor h = empty({100000}, {.dtype = DType::bfloat16});
  init::normal_(h, 0.0, 0.5);
  EXPECT_EQ(h.dtype(), DType::bfloat16);
  Stats s = stats_of(h);
  EXPECT_NEAR(s.mean, 0.0, 0.01);
  EXPECT_NEAR(s.sd, 0.5, 0.01);
}

TEST(Init, TruncNormalStaysInBoundsWithTheTruncatedMoments) {
  for (auto [mean, sd, a, b] :
       {std::tuple{0.0, 1.0, -2.0, 2.0}, std::tuple{1.0, 2.0, 0.0, 3.0}, std::tuple{0.0, 0.02, -0.04, 0.04}}) {
    SCOPED_TRACE("mean " + std::to_string(mean) + " std " + std::to_string(sd));
    Tensor t = empty({300000}, {.dtype = DType::float64});
    init::trunc_normal_(t, mean, sd, a, b);
    Stats s = stats_of(t);
    EXPECT_GE(s.min, a);
    EXPECT_LE(s.max, b);
    // Moments of the truncated normal.
    const double al = (a - mean) / sd, be = (b - mean) / sd, z = cdf(be) - cdf(al);
    const double tmean = mean + sd * (phi(al) - phi(be)) / z;
    const double tvar = sd * sd * (1.0 + (al * phi(al) - be * phi(be)) / z - std::pow((phi(al) - phi(be)) / z, 2));
    expect_moments(t, tmean, std::sqrt(tvar));
    // Close to the edges too (inverse-CDF sampling covers the whole range).
    EXPECT_LT(s.min, a + 0.01 * (b - a));
    EXPECT_GT(s.max, b - 0.01 * (b - a));
  }
  Tensor f = empty({1000});
  init::trunc_normal_(f, 0.0, 1.0, -0.5, 0.25);
  Stats s = stats_of(f);
  EXPECT_GE(s.min, -0.5);
  EXPECT_LE(s.max, 0.25);
}

TEST(Init, ConstantZerosOnesForAnyDType) {
  Tensor t = empty({3, 4});
  init::constant_(t, 2.5);
  EXPECT_TRUE(all_close(t, std::vector<double>(12, 2.5), 0, 0));
  init::zeros_(t);
  EXPECT_TRUE(all_close(t, std::vector<double>(12, 0.0), 0, 0));
  Tensor i = empty({5}, {.dtype = DType::int64});
  init::ones_(i);
  EXPECT_EQ(i.to_vector<double>(), std::vector<double>(5, 1.0));
}

// ------------------------------------------------------------------ fans and gains

TEST(Init, FansAsPyTorch) {
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(empty({3, 5})), (std::pair<int64_t, int64_t>{5, 3}));
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(empty({16, 3, 5, 7})), (std::pair<int64_t, int64_t>{105, 560}));
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(empty({8, 4, 3})), (std::pair<int64_t, int64_t>{12, 24}));
  expect_throws_with([] { init::calculate_fan_in_and_fan_out(empty({5})); },
                     {"fan in and fan out", "fewer than 2 dimensions", "[5]"});
  expect_throws_with([] { init::xavier_uniform_(empty({5})); }, {"fewer than 2 dimensions"});
  expect_throws_with([] { init::kaiming_normal_(scalar_tensor(1.0)); }, {"fewer than 2 dimensions", "[]"});
}

TEST(Init, GainsAsPyTorch) {
  using init::Nonlinearity;
  for (Nonlinearity n : {Nonlinearity::linear, Nonlinearity::conv1d, Nonlinearity::conv2d, Nonlinearity::conv3d,
                         Nonlinearity::conv_transpose1d, Nonlinearity::conv_transpose2d, Nonlinearity::conv_transpose3d,
                         Nonlinearity::sigmoid})
    EXPECT_EQ(init::calculate_gain(n), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::leaky_relu), std::sqrt(2.0 / (1.0 + 0.01 * 0.01)));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::leaky_relu, 0.2), std::sqrt(2.0 / 1.04));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::selu), 0.75);
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("conv_transpose2d"), 1.0);
  expect_throws_with([] { init::calculate_gain("swish"); }, {"calculate_gain", "unsupported nonlinearity 'swish'"});
}

TEST(Init, XavierAndKaimingScales) {
  // Conv-shaped weight: fan_in = 32 * 9 = 288, fan_out = 64 * 9 = 576.
  Tensor w = empty({64, 32, 3, 3}, {.dtype = DType::float64});
  const double fan_in = 288, fan_out = 576;
  init::xavier_uniform_(w, 2.0);
  double bound = 2.0 * std::sqrt(6.0 / (fan_in + fan_out));
  expect_uniform(w, -bound, bound);
  init::xavier_normal_(w, 0.5);
  expect_moments(w, 0.0, 0.5 * std::sqrt(2.0 / (fan_in + fan_out)));
  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_in, init::Nonlinearity::relu);
  bound = std::sqrt(2.0) * std::sqrt(3.0 / fan_in);
  expect_uniform(w, -bound, bound);
  init::kaiming_uniform_(w, std::sqrt(5.0));  // PyTorch's Linear/Conv default: bound = 1 / sqrt(fan_in)
  expect_uniform(w, -1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in));
  init::kaiming_normal_(w, 0.0, init::FanMode::fan_out, init::Nonlinearity::relu);
  expect_moments(w, 0.0, std::sqrt(2.0) / std::sqrt(fan_out));
  init::kaiming_normal_(w, 0.2, init::FanMode::fan_in);  // leaky_relu with slope 0.2
  expect_moments(w, 0.0, std::sqrt(2.0 / 1.04) / std::sqrt(fan_in));
  // Zero-element tensors are a no-op for kaiming (as PyTorch).
  Tensor e = empty({0, 3});
  init::kaiming_uniform_(e);
  EXPECT_EQ(e.numel(), 0);
}

// ------------------------------------------------------------------ semantics

TEST(Init, InPlaceOnParametersWithoutAGraphAndReproducible) {
  Linear lin(30, 20);
  Tensor w = lin.weight();
  const uint64_t version = w.version();
  Tensor out = init::normal_(w, 0.0, 0.1);  // grad mode is on; w requires grad
  EXPECT_TRUE(out.is_same(w));
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_GT(w.version(), version);
  EXPECT_TRUE(lin.named_parameters()[0].second.is_same(w));
  // Same generator state, same values; the default generator is used when none is given.
  Generator g1(42), g2(42);
  Tensor a = empty({1000}), b = empty({1000});
  init::kaiming_uniform_(empty({4, 4}), 0.0, init::FanMode::fan_in, init::Nonlinearity::relu, &g1);
  init::kaiming_uniform_(empty({4, 4}), 0.0, init::FanMode::fan_in, init::Nonlinearity::relu, &g2);
  init::trunc_normal_(a, 0.0, 1.0, -2.0, 2.0, &g1);
  init::trunc_normal_(b, 0.0, 1.0, -2.0, 2.0, &g2);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  manual_seed(9);
  init::uniform_(a);
  manual_seed(9);
  init::uniform_(b);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  init::uniform_(b);
  EXPECT_NE(a.to_vector<double>(), b.to_vector<double>());
  // Non-contiguous targets are filled through their view.
  Tensor base = zeros({4, 6});
  init::ones_(base.slice(1, 0, 6, 2));
  EXPECT_EQ(base.sum().item(), 12.0);
}

TEST(Init, Errors) {
  expect_throws_with([] { init::uniform_(empty({3}), 2.0, 1.0); }, {"uniform_", "a=2", "b=1"});
  expect_throws_with([] { init::normal_(empty({3}), 0.0, -1.0); }, {"normal_", "std=-1"});
  expect_throws_with([] { init::trunc_normal_(empty({3}), 0.0, 1.0, 1.0, -1.0); }, {"trunc_normal_", "a=1", "b=-1"});
  expect_throws_with([] { init::trunc_normal_(empty({3}), 0.0, 0.0); }, {"trunc_normal_", "std=0"});
  expect_throws_with([] { init::uniform_(empty({3}, {.dtype = DType::int64})); }, {"uniform_", "int64", "[3]"});
  expect_throws_with([] { init::normal_(Tensor()); }, {"normal_", "undefined"});
}

// ------------------------------------------------------------------ clip_grad_norm_

const test::Fixture& clip_fixture() {
  static const test::Fixture fx = test::load_fixture("layers_clip");
  return fx;
}

// Three parameters whose grads are the fixture's, plus one without a grad.
std::vector<Tensor> params_with_fixture_grads(DType dtype) {
  std::vector<Tensor> params;
  for (int i = 0; i < 3; ++i) {
    const Tensor& g = clip_fixture().at("grad" + std::to_string(i));
    Tensor p = zeros(g.shape(), {.dtype = dtype}).requires_grad_(true);
    p.set_grad(g.to(dtype).clone());  // to() returns g itself for float64: never clip the fixture
    params.push_back(p);
  }
  params.push_back(zeros({2}, {.dtype = dtype}).requires_grad_(true));
  return params;
}

TEST(ClipGradNorm, MatchesPyTorch) {
  const test::Fixture& fx = clip_fixture();
  for (const char* name : {"norm2", "norminf", "norm2_big", "norm1", "norm3"}) {
    const double max_norm = std::stod(fx.metadata.at(std::string(name) + ".max_norm"));
    const double norm_type = std::stod(fx.metadata.at(std::string(name) + ".norm_type"));
    for (DType dt : {DType::float32, DType::float64}) {
      SCOPED_TRACE(std::string(name) + " " + std::string(dtype_name(dt)));
      const double rtol = dt == DType::float64 ? 1e-12 : 1e-5, atol = dt == DType::float64 ? 1e-14 : 1e-7;
      std::vector<Tensor> params = params_with_fixture_grads(dt);
      Tensor total = clip_grad_norm_(params, max_norm, norm_type);
      EXPECT_EQ(total.dim(), 0);
      EXPECT_EQ(total.dtype(), dt);
      EXPECT_TRUE(all_close(total, fx.at(std::string(name) + ".total").to_vector<double>(), rtol, atol));
      for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(all_close(params[static_cast<size_t>(i)].grad(),
                              fx.at(std::string(name) + ".clipped" + std::to_string(i)).to_vector<double>(), rtol,
                              atol))
            << "grad " << i;
      EXPECT_FALSE(params[3].grad().defined());  // skipped, still none
    }
  }
  EXPECT_EQ(std::stod(fx.metadata.at("norminf.norm_type")), std::numeric_limits<double>::infinity());
}

TEST(ClipGradNorm, ScalesOnlyAboveTheLimitAndHandlesEdgeCases) {
  Tensor p = zeros({2}).requires_grad_(true);
  p.set_grad(tensor({3.0, 4.0}));
  Tensor g = p.grad();
  EXPECT_DOUBLE_EQ(clip_grad_norm_({p}, 10.0).item(), 5.0);
  EXPECT_TRUE(all_close(p.grad(), {3.0, 4.0}, 0, 0));  // below the limit: unchanged
  EXPECT_TRUE(p.grad().is_same(g));
  EXPECT_NEAR(clip_grad_norm_({p}, 1.0).item(), 5.0, 1e-6);
  EXPECT_TRUE(all_close(p.grad(), {0.6, 0.8}, 1e-5, 0));  // in place
  EXPECT_TRUE(p.grad().is_same(g));
  // No grads at all: zero.
  Tensor q = zeros({3}).requires_grad_(true);
  EXPECT_EQ(clip_grad_norm_({q}, 1.0).item(), 0.0);
  EXPECT_EQ(clip_grad_norm_({}, 1.0).item(), 0.0);
  // Mixed dtypes: the total is in the promoted dtype.
  Tensor r = zeros({1}, {.dtype = DType::float64}).requires_grad_(true);
  r.set_grad(tensor({12.0}, {1}, {.dtype = DType::float64}));
  p.set_grad(tensor({3.0, 4.0}));
  Tensor total = clip_grad_norm_({p, r}, 100.0);
  EXPECT_EQ(total.dtype(), DType::float64);
  EXPECT_DOUBLE_EQ(total.item(), 13.0);
}

TEST(ClipGradNorm, NonFiniteNorms) {
  Tensor p = zeros({3}).requires_grad_(true);
  p.set_grad(tensor({1.0, std::numeric_limits<double>::infinity(), 2.0}));
  expect_throws_with([&] { clip_grad_norm_({p}, 1.0, 2.0, /*error_if_nonfinite=*/true); },
                     {"clip_grad_norm_", "order 2", "inf", "non-finite", "error_if_nonfinite"});
  EXPECT_EQ(p.grad().to_vector<double>()[0], 1.0);  // unchanged by the failed call
  p.set_grad(tensor({1.0, std::nan(""), 2.0}));
  expect_throws_with([&] { clip_grad_norm_({p}, 1.0, INFINITY, true); }, {"order inf", "nan"});
  EXPECT_TRUE(std::isnan(clip_grad_norm_({p}, 1.0).item()));  // without the flag, as PyTorch: NaN
}

TEST(ClipGradNorm, Errors) {
  Tensor p = zeros({2}).requires_grad_(true);
  p.set_grad(ones({2}));
  expect_throws_with([&] { clip_grad_norm_({p}, -1.0); }, {"clip_grad_norm_", "max_norm", "-1"});
  expect_throws_with([&] { clip_grad_norm_({p}, 1.0, 0.0); }, {"clip_grad_norm_", "norm_type", "0"});
  expect_throws_with([&] { clip_grad_norm_({p, Tensor()}, 1.0); }, {"clip_grad_norm_", "parameter 1", "undefined"});
  expect_throws_with([&] { clip_grad_value_({p}, -0.5); }, {"clip_grad_value_", "clip_value", "-0.5"});
}

// ------------------------------------------------------------------ clip_grad_value_

TEST(ClipGradValue, MatchesPyTorch) {
  const test::Fixture& fx = clip_fixture();
  const double v = std::stod(fx.metadata.at("value.clip_value"));
  for (DType dt : {DType::float32, DType::float64}) {
    std::vector<Tensor> params = params_with_fixture_grads(dt);
    std::vector<Tensor> before;
    for (int i = 0; i < 3; ++i) before.push_back(params[static_cast<size_t>(i)].grad());
    clip_grad_value_(params, v);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(params[static_cast<size_t>(i)].grad().is_same(before[static_cast<size_t>(i)]));  // in place
      EXPECT_TRUE(all_close(params[static_cast<size_t>(i)].grad(),
                            fx.at("value.clipped" + std::to_string(i)).to_vector<double>(),
                            dt == DType::float64 ? 0.0 : 1e-7, 0.0));
    }
    EXPECT_FALSE(params[3].grad().defined());
  }
}

}  // namespace
