// Initialisers: random values are drawn on the CPU in float64 (for float64
// targets) or float32 (every other floating dtype) from the Philox generator,
// transformed there, then copied into the target (any device, any floating dtype)
// with one copy_ under NoGradGuard.
#include "nn/init.h"

#include <cmath>
#include <limits>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"

namespace zae::nn::init {
namespace {

void check_floating(const Tensor& t, const char* fn) {
  ZAE_CHECK(t.defined(), "init.", fn, ": undefined tensor");
  ZAE_CHECK(is_floating(t.dtype()), "init.", fn, ": tensor of dtype ", t.dtype(), " and shape ", shape_str(t.shape()),
            " is not floating");
}

// The dtype random draws are made in before the copy into the target.
DType draw_dtype(const Tensor& t) { return t.dtype() == DType::float64 ? DType::float64 : DType::float32; }

// Writes `values` (CPU, any floating dtype, t's shape) into t without recording a graph.
Tensor fill_from(Tensor t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
  return t;
}

// erfinv(y) for y in (-1, 1): Giles' single-precision approximation refined by two
// Newton steps on erf (quadratic convergence gives full double precision).
double erfinv(double y) {
  if (y <= -1.0) return -std::numeric_limits<double>::infinity();
  if (y >= 1.0) return std::numeric_limits<double>::infinity();
  double w = -std::log((1.0 - y) * (1.0 + y));
  double x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
    x = p * y;
  }
  const double two_over_sqrt_pi = 1.1283791670955126;
  for (int i = 0; i < 2; ++i) {
    double d = two_over_sqrt_pi * std::exp(-x * x);
    if (d == 0.0) break;
    x -= (std::erf(x) - y) / d;
  }
  return x;
}

double norm_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }

double fan_of(const Tensor& t, FanMode mode) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return static_cast<double>(mode == FanMode::fan_in ? fan_in : fan_out);
}

}  // namespace

Nonlinearity parse_nonlinearity(std::string_view name) {
  static const std::pair<std::string_view, Nonlinearity> kNames[] = {
      {"linear", Nonlinearity::linear},
      {"conv1d", Nonlinearity::conv1d},
      {"conv2d", Nonlinearity::conv2d},
      {"conv3d", Nonlinearity::conv3d},
      {"conv_transpose1d", Nonlinearity::conv_transpose1d},
      {"conv_transpose2d", Nonlinearity::conv_transpose2d},
      {"conv_transpose3d", Nonlinearity::conv_transpose3d},
      {"sigmoid", Nonlinearity::sigmoid},
      {"tanh", Nonlinearity::tanh},
      {"relu", Nonlinearity::relu},
      {"leaky_relu", Nonlinearity::leaky_relu},
      {"selu", Nonlinearity::selu},
  };
  for (const auto& [n, v] : kNames)
    if (n == name) return v;
  ZAE_FAIL("init.calculate_gain: unsupported nonlinearity '", name,
           "' (expected linear, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, sigmoid, "
           "tanh, relu, leaky_relu or selu)");
}

double calculate_gain(Nonlinearity nonlinearity, std::optional<double> param) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::conv1d:
    case Nonlinearity::conv2d:
    case Nonlinearity::conv3d:
    case Nonlinearity::conv_transpose1d:
    case Nonlinearity::conv_transpose2d:
    case Nonlinearity::conv_transpose3d:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu: {
      double slope = param.value_or(0.01);
      ZAE_CHECK(std::isfinite(slope), "init.calculate_gain: negative_slope ", slope, " is not a finite number");
      return std::sqrt(2.0 / (1.0 + slope * slope));
    }
    case Nonlinearity::selu:
      return 3.0 / 4.0;
  }
  ZAE_FAIL("init.calculate_gain: unknown nonlinearity code ", static_cast<int>(nonlinearity));
}

double calculate_gain(std::string_view nonlinearity, std::optional<double> param) {
  return calculate_gain(parse_nonlinearity(nonlinearity), param);
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  ZAE_CHECK(t.defined(), "init: fan in and fan out of an undefined tensor");
  ZAE_CHECK(t.dim() >= 2,
            "init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (shape ",
            shape_str(t.shape()), ")");
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.shape()[static_cast<size_t>(d)];
  return {t.shape()[1] * receptive, t.shape()[0] * receptive};
}

Tensor uniform_(Tensor t, double a, double b, Generator* gen) {
  check_floating(t, "uniform_");
  ZAE_CHECK(std::isfinite(a) && std::isfinite(b) && a <= b,
            "init.uniform_: expects a finite range [a, b) with a <= b, got a=", a, ", b=", b);
  Tensor r = rand(t.shape(), {.dtype = draw_dtype(t)}, gen);
  NoGradGuard no_grad;
  r.mul_(b - a).add_(a);
  return fill_from(std::move(t), r);
}

Tensor normal_(Tensor t, double mean, double std_dev, Generator* gen) {
  check_floating(t, "normal_");
  ZAE_CHECK(std::isfinite(mean) && std::isfinite(std_dev) && std_dev >= 0.0,
            "init.normal_: expects a finite mean and std >= 0, got mean=", mean, ", std=", std_dev);
  Tensor r = randn(t.shape(), {.dtype = draw_dtype(t)}, gen);
  NoGradGuard no_grad;
  r.mul_(std_dev).add_(mean);
  return fill_from(std::move(t), r);
}

Tensor trunc_normal_(Tensor t, double mean, double std_dev, double a, double b, Generator* gen) {
  check_floating(t, "trunc_normal_");
  ZAE_CHECK(std::isfinite(mean) && std::isfinite(std_dev) && std_dev > 0.0,
            "init.trunc_normal_: expects a finite mean and std > 0, got mean=", mean, ", std=", std_dev);
  ZAE_CHECK(!std::isnan(a) && !std::isnan(b) && a < b, "init.trunc_normal_: expects bounds a < b, got a=", a,
            ", b=", b);
  // Inverse-CDF sampling: u ~ U[2 cdf(a') - 1, 2 cdf(b') - 1], x = mean + std sqrt(2) erfinv(u),
  // with a' and b' the standardised bounds; clamping guards the rounding at the ends.
  const double lo = 2.0 * norm_cdf((a - mean) / std_dev) - 1.0;
  const double hi = 2.0 * norm_cdf((b - mean) / std_dev) - 1.0;
  std::vector<double> u = rand(t.shape(), {.dtype = DType::float64}, gen).to_vector<double>();
  for (double& v : u) {
    double x = mean + std_dev * std::sqrt(2.0) * erfinv(lo + (hi - lo) * v);
    v = std::fmin(std::fmax(x, a), b);
  }
  return fill_from(std::move(t), tensor(u, t.shape(), {.dtype = DType::float64}));
}

Tensor constant_(Tensor t, double value) {
  ZAE_CHECK(t.defined(), "init.constant_: undefined tensor");
  NoGradGuard no_grad;
  t.fill_(value);
  return t;
}

Tensor zeros_(Tensor t) { return constant_(std::move(t), 0.0); }
Tensor ones_(Tensor t) { return constant_(std::move(t), 1.0); }

Tensor xavier_uniform_(Tensor t, double gain, Generator* gen) {
  check_floating(t, "xavier_uniform_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  ZAE_CHECK(fan_in + fan_out > 0, "init.xavier_uniform_: zero fans for a tensor of shape ", shape_str(t.shape()));
  const double std_dev = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double bound = std::sqrt(3.0) * std_dev;
  return uniform_(std::move(t), -bound, bound, gen);
}

Tensor xavier_normal_(Tensor t, double gain, Generator* gen) {
  check_floating(t, "xavier_normal_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  ZAE_CHECK(fan_in + fan_out > 0, "init.xavier_normal_: zero fans for a tensor of shape ", shape_str(t.shape()));
  return normal_(std::move(t), 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

Tensor kaiming_uniform_(Tensor t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  check_floating(t, "kaiming_uniform_");
  if (t.numel() == 0) return t;  // PyTorch: initialising a zero-element tensor is a no-op
  const double fan = fan_of(t, mode);
  const double bound = std::sqrt(3.0) * calculate_gain(nonlinearity, a) / std::sqrt(fan);
  return uniform_(std::move(t), -bound, bound, gen);
}

Tensor kaiming_normal_(Tensor t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  check_floating(t, "kaiming_normal_");
  if (t.numel() == 0) return t;
  const double fan = fan_of(t, mode);
  return normal_(std::move(t), 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan), gen);
}

}  // namespace zae::nn::init
