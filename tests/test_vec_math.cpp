// Tests of the vectorizable float32 exp / tanh (kernels/cpu/vec_math.h) and of the CPU
// kernels that use them (GELU(tanh) forward and gradient, tanh, cross-entropy):
// - exp_f32 and tanh_f32 against exp / tanh in double on ~4.2M float bit patterns spread
//   over the whole range (every 1021st), max error in ulp of the float result (measured
//   on all 2^32 floats: exp 0.96 ulp, tanh 2.42 ulp), plus the special values;
// - GELU(tanh) and its gradient in float32 against the same formulas in float64: no worse
//   than the old libm-tanhf formulation (computed here), within a stated bound;
// - cross-entropy forward and backward in float32 against float64 on wide logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"
#include "kernels/cpu/vec_math.h"

namespace zae::test {
namespace {

namespace vec = zae::kernels::cpu::vec;

// |got - ref| in units of the float ulp at ref's magnitude (the subnormal ulp below FLT_MIN).
double ulp_error(float got, double ref) {
  if (std::isnan(ref)) return std::isnan(got) ? 0.0 : 1e30;
  const double a = std::max(std::fabs(ref), static_cast<double>(std::numeric_limits<float>::min()));
  if (a > static_cast<double>(std::numeric_limits<float>::max())) return got == static_cast<float>(ref) ? 0.0 : 1e30;
  int e = 0;
  std::frexp(a, &e);
  return std::fabs(static_cast<double>(got) - ref) / std::ldexp(1.0, e - 24);
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(VecMath, ExpWithinOneUlpOverTheWholeRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 1021) {
    const float x = from_bits(static_cast<uint32_t>(b));
    const double ref = std::exp(static_cast<double>(x));
    // Results above FLT_MAX must be +inf.
    if (ref > static_cast<double>(std::numeric_limits<float>::max()) && !std::isnan(x)) {
      ASSERT_TRUE(std::isinf(vec::exp_f32(x))) << x;
      continue;
    }
    const double e = ulp_error(vec::exp_f32(x), ref);
    if (e > worst) worst = e, worst_x = x;
  }
  EXPECT_LE(worst, 1.0) << "worst at x = " << worst_x;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(vec::exp_f32(0.0f), 1.0f);
  EXPECT_EQ(vec::exp_f32(-0.0f), 1.0f);
  EXPECT_EQ(vec::exp_f32(inf), inf);
  EXPECT_EQ(vec::exp_f32(-inf), 0.0f);
  EXPECT_EQ(vec::exp_f32(89.0f), inf);
  EXPECT_EQ(vec::exp_f32(-200.0f), 0.0f);
  EXPECT_TRUE(std::isnan(vec::exp_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(vec::exp_f32(-103.0f), std::exp(-103.0f));  // subnormal result
}

TEST(VecMath, TanhWithinThreeUlpOverTheWholeRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 1021) {
    const float x = from_bits(static_cast<uint32_t>(b));
    const double e = ulp_error(vec::tanh_f32(x), std::tanh(static_cast<double>(x)));
    if (e > worst) worst = e, worst_x = x;
  }
  EXPECT_LE(worst, 3.0) << "worst at x = " << worst_x;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(vec::tanh_f32(inf), 1.0f);
  EXPECT_EQ(vec::tanh_f32(-inf), -1.0f);
  EXPECT_EQ(vec::tanh_f32(20.0f), 1.0f);
  EXPECT_EQ(vec::tanh_f32(-1e30f), -1.0f);
  EXPECT_EQ(vec::tanh_f32(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(vec::tanh_f32(-0.0f)));
  EXPECT_EQ(vec::tanh_f32(1e-30f), 1e-30f);
  EXPECT_EQ(vec::tanh_f32(-1e-40f), -1e-40f);  // subnormal in, itself out
  EXPECT_TRUE(std::isnan(vec::tanh_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(vec::tanh_f32(-std::numeric_limits<float>::quiet_NaN())));
}

// The GELU(tanh) formulas of kernels/cpu/unary.cpp, in double and with libm's float tanh.
constexpr double kK = 0.7978845608028654, kC = 0.044715;
double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(kK * (x + kC * x * x * x))); }
double gelu_grad_ref(double x) {
  const double t = std::tanh(kK * (x + kC * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kK * (1.0 + 3.0 * kC * x * x);
}
float gelu_libm(float x) {
  const float k = static_cast<float>(kK), c = static_cast<float>(kC);
  return 0.5f * x * (1.0f + std::tanh(k * (x + c * x * x * x)));
}
float gelu_grad_libm(float x) {
  const float k = static_cast<float>(kK), c = static_cast<float>(kC);
  const float t = std::tanh(k * (x + c * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * (k * (1.0f + 3.0f * c * x * x));
}

TEST(VecMath, GeluTanhAndItsGradientMatchFloat64) {
  // x over [-12, 12] in fine steps plus the special values.
  std::vector<float> xs;
  for (int i = -120000; i <= 120000; ++i) xs.push_back(static_cast<float>(i) * 1e-4f);
  const float inf = std::numeric_limits<float>::infinity();
  xs.insert(xs.end(), {1e-30f, -1e-30f, 30.0f, -30.0f, 1e20f, inf});
  const int64_t n = static_cast<int64_t>(xs.size());
  Tensor x = tensor(xs, {n});
  x.requires_grad_(true);
  Tensor y = gelu(x, GeluApprox::tanh);
  y.sum().backward();
  const std::vector<float> got = y.to_vector<float>(), dgot = x.grad().to_vector<float>();
  // Error scale: |x| * 2^-24 (the tanh term's ulp times x) plus an ulp of the result.
  double worst = 0.0, worst_libm = 0.0, worst_d = 0.0, worst_d_libm = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = xs[static_cast<size_t>(i)];
    if (std::isinf(xi)) {
      EXPECT_EQ(got[static_cast<size_t>(i)], inf);
      continue;
    }
    const double scale = std::fabs(static_cast<double>(xi)) * 0x1p-24 + 0x1p-24 * std::fabs(gelu_ref(xi)) + 1e-45;
    const double ref = gelu_ref(xi), dref = gelu_grad_ref(xi);
    worst = std::max(worst, std::fabs(got[static_cast<size_t>(i)] - ref) / scale);
    worst_libm = std::max(worst_libm, std::fabs(gelu_libm(xi) - ref) / scale);
    const double dscale = 0x1p-24 * (1.0 + std::fabs(static_cast<double>(xi)) * std::fabs(static_cast<double>(xi)));
    if (std::fabs(xi) < 1e6f) {  // beyond, x^3 overflows float and the gradient is NaN either way
      worst_d = std::max(worst_d, std::fabs(dgot[static_cast<size_t>(i)] - dref) / dscale);
      worst_d_libm = std::max(worst_d_libm, std::fabs(gelu_grad_libm(xi) - dref) / dscale);
    }
  }
  std::printf("[   info   ] GELU(tanh) float32 max error / (|x| 2^-24 + ulp): vectorized %.2f, libm tanhf %.2f; "
              "gradient / ((1 + x^2) 2^-24): vectorized %.2f, libm tanhf %.2f\n",
              worst, worst_libm, worst_d, worst_d_libm);
  // The vectorized tanh must not make GELU less accurate than libm's tanhf did.
  EXPECT_LE(worst, 3.0);
  EXPECT_LE(worst, 1.5 * worst_libm + 1.0) << "libm formulation: " << worst_libm;
  EXPECT_LE(worst_d, 4.0);
  EXPECT_LE(worst_d, 1.5 * worst_d_libm + 1.0) << "libm formulation: " << worst_d_libm;
  // Large positive x: gelu(x) = x; large negative: 0; NaN stays NaN.
  Tensor special = gelu(tensor(std::vector<float>{30.0f, -30.0f, std::numeric_limits<float>::quiet_NaN()}, {3}),
                        GeluApprox::tanh);
  const std::vector<float> s = special.to_vector<float>();
  EXPECT_EQ(s[0], 30.0f);
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_TRUE(std::isnan(s[2]));
}

TEST(VecMath, TanhOpWithinThreeUlpOfFloat64) {
  std::vector<float> xs;
  for (int i = -20000; i <= 20000; ++i) xs.push_back(static_cast<float>(i) * 5e-4f);
  const int64_t n = static_cast<int64_t>(xs.size());
  const std::vector<float> got = zae::tanh(tensor(xs, {n})).to_vector<float>();
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    worst = std::max(worst, ulp_error(got[static_cast<size_t>(i)], std::tanh(static_cast<double>(xs[i]))));
  EXPECT_LE(worst, 3.0);
}

TEST(VecMath, CrossEntropyFloat32MatchesFloat64) {
  // 37 rows of 1000 classes (not a multiple of the 16 lanes), logits spread over +-30,
  // one row with a -inf logit, label smoothing, class weights.
  const int64_t rows = 37, classes = 1000;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-30.0, 30.0);
  std::vector<double> logits(static_cast<size_t>(rows * classes));
  for (double& v : logits) v = u(rng);
  std::vector<int64_t> target(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) target[static_cast<size_t>(r)] = (r * 131) % classes;
  std::vector<double> w(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) w[static_cast<size_t>(c)] = 0.5 + static_cast<double>(c % 7) / 7.0;
  struct Config {
    bool weighted;
    double smoothing;
    bool neg_inf;  // row 0 has a -inf logit (not with smoothing: its loss would be inf)
  };
  for (const Config cfg : {Config{false, 0.1, false}, Config{true, 0.1, false}, Config{false, 0.0, true},
                           Config{true, 0.0, true}}) {
    const bool weighted = cfg.weighted;
    logits[5] = cfg.neg_inf ? -std::numeric_limits<double>::infinity() : 1.0;
    CrossEntropyOptions o64{.label_smoothing = cfg.smoothing};
    CrossEntropyOptions o32{.label_smoothing = cfg.smoothing};
    if (weighted) {
      o64.weight = tensor(w, {classes});
      o32.weight = o64.weight.to(DType::float32);
    }
    Tensor x64 = tensor(logits, {rows, classes});
    Tensor x32 = x64.to(DType::float32).detach();
    x64.requires_grad_(true);
    x32.requires_grad_(true);
    Tensor t = tensor(target, {rows});
    Tensor l64 = cross_entropy(x64, t, o64), l32 = cross_entropy(x32, t, o32);
    l64.backward();
    l32.backward();
    const double a = l64.item<double>(), b = static_cast<double>(l32.item<float>());
    EXPECT_NEAR(b, a, 2e-6 * std::fabs(a)) << "weighted " << weighted << " smoothing " << cfg.smoothing << " -inf " << cfg.neg_inf;
    const std::vector<double> g64 = x64.grad().to_vector<double>();
    const std::vector<float> g32 = x32.grad().to_vector<float>();
    double worst = 0.0, gmax = 0.0;
    for (size_t i = 0; i < g64.size(); ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(g32[i]) - g64[i]));
      gmax = std::max(gmax, std::fabs(g64[i]));
    }
    EXPECT_LE(worst, 1e-6 * gmax) << "weighted " << weighted << " smoothing " << cfg.smoothing << " -inf " << cfg.neg_inf;
  }
}

}  // namespace
}  // namespace zae::test
