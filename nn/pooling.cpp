// MaxPool2d / AvgPool2d / AdaptiveAvgPool2d: option checks and PyTorch's repr; the
// forward is the functional op. Invariant: opts_.stride is always set after construction.
#include "nn/pooling.h"

#include <sstream>

#include "nn/repr.h"

namespace zae::nn {

namespace {

// The window checks the functional ops would make at every forward, made once up front.
void check_window(const std::string& layer, IntPair kernel, IntPair stride, IntPair padding, IntPair dilation) {
  ZAE_CHECK(kernel.h > 0 && kernel.w > 0, layer, ": kernel_size must be positive, got ", kernel.tuple_str());
  ZAE_CHECK(stride.h > 0 && stride.w > 0, layer, ": stride must be positive, got ", stride.tuple_str());
  ZAE_CHECK(dilation.h > 0 && dilation.w > 0, layer, ": dilation must be positive, got ", dilation.tuple_str());
  ZAE_CHECK(padding.h >= 0 && padding.w >= 0, layer, ": padding must be non-negative, got ", padding.tuple_str());
  ZAE_CHECK(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2, layer, ": padding ", padding.tuple_str(),
            " must be at most half of kernel_size ", kernel.tuple_str());
}

}  // namespace

// ---- MaxPool2d ------------------------------------------------------------------------

MaxPool2d::MaxPool2d(const Options& opts) : Layer("MaxPool2d"), opts_(opts) {
  if (!opts_.stride) opts_.stride = opts_.kernel_size;
  check_window("MaxPool2d(" + extra_repr() + ")", opts_.kernel_size, *opts_.stride, opts_.padding, opts_.dilation);
}

Tensor MaxPool2d::forward(const Tensor& x) { return forward_with_indices(x).first; }

std::pair<Tensor, Tensor> MaxPool2d::forward_with_indices(const Tensor& x) {
  return max_pool2d_with_indices(x, opts_.kernel_size, opts_.stride, opts_.padding, opts_.dilation, opts_.ceil_mode);
}

std::string MaxPool2d::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << opts_.kernel_size.str() << ", stride=" << opts_.stride.value_or(opts_.kernel_size).str()
     << ", padding=" << opts_.padding.str() << ", dilation=" << opts_.dilation.str()
     << ", ceil_mode=" << python_bool_repr(opts_.ceil_mode);
  return os.str();
}

// ---- AvgPool2d ------------------------------------------------------------------------

AvgPool2d::AvgPool2d(const Options& opts) : Layer("AvgPool2d"), opts_(opts) {
  if (!opts_.stride) opts_.stride = opts_.kernel_size;
  const std::string me = "AvgPool2d(" + extra_repr() + ")";
  check_window(me, opts_.kernel_size, *opts_.stride, opts_.padding, 1);
  ZAE_CHECK(!opts_.divisor_override || *opts_.divisor_override > 0, me, ": divisor_override must be positive, got ",
            opts_.divisor_override.value_or(0));
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, opts_.kernel_size, opts_.stride, opts_.padding, opts_.ceil_mode, opts_.count_include_pad,
                    opts_.divisor_override);
}

std::string AvgPool2d::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << opts_.kernel_size.str() << ", stride=" << opts_.stride.value_or(opts_.kernel_size).str()
     << ", padding=" << opts_.padding.str();
  return os.str();
}

// ---- AdaptiveAvgPool2d ----------------------------------------------------------------

AdaptiveAvgPool2d::AdaptiveAvgPool2d(const Options& opts) : Layer("AdaptiveAvgPool2d"), opts_(opts) {
  ZAE_CHECK(opts_.output_size.h > 0 && opts_.output_size.w > 0, "AdaptiveAvgPool2d(", extra_repr(),
            "): output_size must be positive, got ", opts_.output_size.tuple_str());
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, opts_.output_size); }

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + opts_.output_size.str(); }

}  // namespace zae::nn
