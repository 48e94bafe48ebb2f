// PyTorch-style printing: tensor([[1.0000, 2.0000], ...], dtype=float64, device='cuda:0',
// requires_grad=True). Large tensors (> 1000 elements) show the first and last three
// entries of each dim with "..." between them.
#include <cmath>
#include <functional>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/tensor.h"

namespace zae {

namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdgeItems = 3;

struct Format {
  bool boolean = false;
  bool floating = false;
  bool scientific = false;
  bool all_integral = true;  // every finite float value is a whole number
  int width = 1;
};

std::string format_value(double v, const Format& f) {
  std::ostringstream os;
  if (f.boolean) {
    os << (v != 0 ? "True" : "False");
  } else if (!f.floating) {
    os << static_cast<int64_t>(v);
  } else if (std::isnan(v)) {
    os << "nan";
  } else if (std::isinf(v)) {
    os << (v > 0 ? "inf" : "-inf");
  } else if (f.scientific) {
    os << std::scientific << std::setprecision(4) << v;
  } else if (f.all_integral) {
    os << std::fixed << std::setprecision(0) << v << '.';
  } else {
    os << std::fixed << std::setprecision(4) << v;
  }
  return os.str();
}

// Reads element `flat` (row-major logical index) of a CPU tensor as double.
double read(const Tensor& t, const Shape& idx) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
  return dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return static_cast<double>(static_cast<const T*>(t.raw_data())[off]);
  });
}

void collect(const Tensor& t, Shape& idx, size_t d, bool summarize, const std::function<void(double)>& fn) {
  if (d == idx.size()) {
    fn(read(t, idx));
    return;
  }
  int64_t n = t.shape()[d];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) i = n - kEdgeItems;
    idx[d] = i;
    collect(t, idx, d + 1, summarize, fn);
  }
}

void emit(std::ostream& os, const Tensor& t, Shape& idx, size_t d, bool summarize, const Format& f, int indent) {
  if (d == idx.size()) {
    std::string s = format_value(read(t, idx), f);
    os << std::string(static_cast<size_t>(std::max<int>(0, f.width - static_cast<int>(s.size()))), ' ') << s;
    return;
  }
  int64_t n = t.shape()[d];
  os << '[';
  bool last_dim = d + 1 == idx.size();
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) {
      os << ',';
      if (last_dim) {
        os << ' ';
      } else {
        os << std::string(idx.size() - d - 1, '\n') << std::string(static_cast<size_t>(indent + 1), ' ');
      }
    }
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << "...";
      os << (last_dim ? ", " : ",\n" + std::string(static_cast<size_t>(indent + 1), ' '));
      i = n - kEdgeItems;
    }
    idx[d] = i;
    emit(os, t, idx, d + 1, summarize, f, indent + 1);
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  NoGradGuard no_grad;
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  bool summarize = numel() > kSummarizeAbove;
  Format f;
  f.floating = is_floating(dtype());
  f.boolean = dtype() == DType::bool_;
  double max_abs = 0, min_abs = INFINITY;
  Shape idx(static_cast<size_t>(dim()), 0);
  if (numel() > 0) {
    collect(host, idx, 0, summarize, [&](double v) {
      if (!std::isfinite(v)) return;
      max_abs = std::max(max_abs, std::fabs(v));
      if (v != 0) min_abs = std::min(min_abs, std::fabs(v));
      if (v != std::floor(v)) f.all_integral = false;
    });
    if (f.floating && max_abs > 0 && (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1e3) &&
        !f.all_integral)
      f.scientific = true;
    collect(host, idx, 0, summarize, [&](double v) {
      f.width = std::max<int>(f.width, static_cast<int>(format_value(v, f).size()));
    });
  }
  std::ostringstream os;
  const std::string prefix = "tensor(";
  if (dim() == 0) {
    os << prefix << format_value(host.item(), f);
  } else if (numel() == 0) {
    os << prefix << "[]";
  } else {
    os << prefix;
    emit(os, host, idx, 0, summarize, f, static_cast<int>(prefix.size()));
  }
  if (numel() == 0 || summarize) os << ", size=" << shape_str(shape());
  if (dtype() != DType::float32 && dtype() != DType::int64 && dtype() != DType::bool_) os << ", dtype=" << dtype();
  if (!device().is_cpu()) os << ", device='" << device() << "'";
  if (grad_fn())
    os << ", grad_fn=<" << grad_fn()->name() << ">";
  else if (requires_grad())
    os << ", requires_grad=True";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace zae
