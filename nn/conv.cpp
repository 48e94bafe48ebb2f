// Conv1d / Conv2d: option checks, PyTorch's default initialisation and repr; the
// forward is the functional op. Invariant: parameters keep their handles for the
// layer's lifetime (reset_parameters refills them in place).
#include "nn/conv.h"

#include <cmath>
#include <sstream>

#include "engine/ops/factory.h"
#include "nn/init.h"

namespace zae::nn {

namespace {

// Checks what Conv1d and Conv2d share; `layer` is the layer's repr for the messages.
void check_channels(const std::string& layer, int64_t in_channels, int64_t out_channels, int64_t groups) {
  ZAE_CHECK(in_channels > 0 && out_channels > 0, layer, ": in_channels and out_channels must be positive, got ",
            in_channels, " and ", out_channels);
  ZAE_CHECK(groups > 0, layer, ": groups must be positive, got ", groups);
  ZAE_CHECK(in_channels % groups == 0, layer, ": in_channels (", in_channels, ") must be divisible by groups (", groups,
            ")");
  ZAE_CHECK(out_channels % groups == 0, layer, ": out_channels (", out_channels, ") must be divisible by groups (",
            groups, ")");
}

// weight ~ kaiming_uniform_(a = sqrt(5)) = U[-1/sqrt(fan_in), 1/sqrt(fan_in)]; bias ~ the same bound.
void init_conv(Tensor& weight, Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

// The channel dim of a conv input of `spatial` spatial dims (batched or not), or -1 for a bad rank.
int64_t input_channels(const Tensor& x, int64_t spatial) {
  if (x.dim() == spatial + 2) return x.size(1);
  if (x.dim() == spatial + 1) return x.size(0);
  return -1;
}

}  // namespace

// ---- Conv1d ---------------------------------------------------------------------------

Conv1d::Conv1d(const Options& opts) : Layer("Conv1d"), opts_(opts) {
  const std::string me = "Conv1d(" + extra_repr() + ")";
  check_channels(me, opts.in_channels, opts.out_channels, opts.groups);
  ZAE_CHECK(opts.kernel_size > 0, me, ": kernel_size must be positive, got ", opts.kernel_size);
  ZAE_CHECK(opts.stride > 0, me, ": stride must be positive, got ", opts.stride);
  ZAE_CHECK(opts.dilation > 0, me, ": dilation must be positive, got ", opts.dilation);
  ZAE_CHECK(opts.padding >= 0, me, ": padding must be non-negative, got ", opts.padding);
  weight_ = register_parameter("weight", empty({opts.out_channels, opts.in_channels / opts.groups, opts.kernel_size}));
  if (opts.bias) bias_ = register_parameter("bias", empty({opts.out_channels}));
  reset_parameters();
}

void Conv1d::reset_parameters() { init_conv(weight_, bias_); }

Tensor Conv1d::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "Conv1d: undefined input");
  ZAE_CHECK(input_channels(x, 1) == opts_.in_channels, "Conv1d(", extra_repr(), "): expected input (N, ",
            opts_.in_channels, ", L) or (", opts_.in_channels, ", L), got shape ", shape_str(x.shape()));
  return conv1d(x, weight_, bias_,
                {.stride = opts_.stride, .padding = opts_.padding, .dilation = opts_.dilation, .groups = opts_.groups});
}

std::string Conv1d::extra_repr() const {
  std::ostringstream os;
  os << opts_.in_channels << ", " << opts_.out_channels << ", kernel_size=(" << opts_.kernel_size << ",), stride=("
     << opts_.stride << ",)";
  if (opts_.padding != 0) os << ", padding=(" << opts_.padding << ",)";
  if (opts_.dilation != 1) os << ", dilation=(" << opts_.dilation << ",)";
  if (opts_.groups != 1) os << ", groups=" << opts_.groups;
  if (!opts_.bias) os << ", bias=False";
  return os.str();
}

// ---- Conv2d ---------------------------------------------------------------------------

Conv2d::Conv2d(const Options& opts) : Layer("Conv2d"), opts_(opts) {
  const std::string me = "Conv2d(" + extra_repr() + ")";
  check_channels(me, opts.in_channels, opts.out_channels, opts.groups);
  ZAE_CHECK(opts.kernel_size.h > 0 && opts.kernel_size.w > 0, me, ": kernel_size must be positive, got ",
            opts.kernel_size.tuple_str());
  ZAE_CHECK(opts.stride.h > 0 && opts.stride.w > 0, me, ": stride must be positive, got ", opts.stride.tuple_str());
  ZAE_CHECK(opts.dilation.h > 0 && opts.dilation.w > 0, me, ": dilation must be positive, got ",
            opts.dilation.tuple_str());
  ZAE_CHECK(opts.padding.h >= 0 && opts.padding.w >= 0, me, ": padding must be non-negative, got ",
            opts.padding.tuple_str());
  weight_ = register_parameter(
      "weight", empty({opts.out_channels, opts.in_channels / opts.groups, opts.kernel_size.h, opts.kernel_size.w}));
  if (opts.bias) bias_ = register_parameter("bias", empty({opts.out_channels}));
  reset_parameters();
}

void Conv2d::reset_parameters() { init_conv(weight_, bias_); }

Tensor Conv2d::forward(const Tensor& x) {
  ZAE_CHECK(x.defined(), "Conv2d: undefined input");
  ZAE_CHECK(input_channels(x, 2) == opts_.in_channels, "Conv2d(", extra_repr(), "): expected input (N, ",
            opts_.in_channels, ", H, W) or (", opts_.in_channels, ", H, W), got shape ", shape_str(x.shape()));
  return conv2d(x, weight_, bias_,
                {.stride = opts_.stride, .padding = opts_.padding, .dilation = opts_.dilation, .groups = opts_.groups});
}

std::string Conv2d::extra_repr() const {
  std::ostringstream os;
  os << opts_.in_channels << ", " << opts_.out_channels << ", kernel_size=" << opts_.kernel_size.tuple_str()
     << ", stride=" << opts_.stride.tuple_str();
  if (opts_.padding != IntPair(0)) os << ", padding=" << opts_.padding.tuple_str();
  if (opts_.dilation != IntPair(1)) os << ", dilation=" << opts_.dilation.tuple_str();
  if (opts_.groups != 1) os << ", groups=" << opts_.groups;
  if (!opts_.bias) os << ", bias=False";
  return os.str();
}

}  // namespace zae::nn
