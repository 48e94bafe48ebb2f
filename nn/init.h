// Parameter initialisers, as torch.nn.init. Every function fills its tensor in
// place under NoGradGuard (the tensor may be a leaf that requires grad, e.g. a
// registered parameter), keeps its dtype, device and handle identity, bumps its
// version counter, and returns the same handle. Random initialisers draw from
// `gen` (the default generator when null), so a seeded generator reproduces a
// model exactly. Fans follow PyTorch's _calculate_fan_in_and_fan_out: for a
// weight of shape (out, in, *kernel), fan_in = in * prod(kernel) and
// fan_out = out * prod(kernel); fewer than 2 dims is an error.
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "engine/generator.h"
#include "engine/tensor.h"

namespace zae::nn::init {

/// The nonlinearities calculate_gain knows (torch.nn.init.calculate_gain).
enum class Nonlinearity {
  linear,
  conv1d,
  conv2d,
  conv3d,
  conv_transpose1d,
  conv_transpose2d,
  conv_transpose3d,
  sigmoid,
  tanh,
  relu,
  leaky_relu,
  selu,
};

/// Which fan kaiming_* preserves the variance of.
enum class FanMode { fan_in, fan_out };

/// The recommended gain: 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
/// sqrt(2 / (1 + slope^2)) for leaky_relu (slope = param, default 0.01), 3/4 for selu.
double calculate_gain(Nonlinearity nonlinearity, std::optional<double> param = std::nullopt);
/// The same from PyTorch's spelling ("relu", "leaky_relu", ...); unknown names are an error.
double calculate_gain(std::string_view nonlinearity, std::optional<double> param = std::nullopt);
/// Parses a PyTorch nonlinearity name; unknown names are an error listing the known ones.
Nonlinearity parse_nonlinearity(std::string_view name);

/// (fan_in, fan_out) of a weight of shape (out, in, *kernel); errors for fewer than 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

/// U[a, b). Requires a <= b and a floating tensor.
Tensor uniform_(Tensor t, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
/// N(mean, std^2). Requires std_dev >= 0 and a floating tensor.
Tensor normal_(Tensor t, double mean = 0.0, double std_dev = 1.0, Generator* gen = nullptr);
/// N(mean, std^2) truncated to [a, b] (inverse-CDF sampling, as PyTorch). Requires a < b, std_dev > 0.
Tensor trunc_normal_(Tensor t, double mean = 0.0, double std_dev = 1.0, double a = -2.0, double b = 2.0,
                     Generator* gen = nullptr);
/// Every element = value (any dtype).
Tensor constant_(Tensor t, double value);
Tensor zeros_(Tensor t);
Tensor ones_(Tensor t);
/// U[-bound, bound] with bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot).
Tensor xavier_uniform_(Tensor t, double gain = 1.0, Generator* gen = nullptr);
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor t, double gain = 1.0, Generator* gen = nullptr);
/// U[-bound, bound] with bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a) (He).
Tensor kaiming_uniform_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator* gen = nullptr);
/// N(0, std^2) with std = gain / sqrt(fan).
Tensor kaiming_normal_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                       Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator* gen = nullptr);

}  // namespace zae::nn::init
