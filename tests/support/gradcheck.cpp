// Float64 central-difference gradient check; see gradcheck.h for the contract.
// Analytic side: one autograd::grad call with the upstream gradients w. Numeric
// side: sum_k <f_k(x), w_k> evaluated in double under NoGradGuard while one storage
// element at a time is moved to x +- eps through a raw pointer.
#include "tests/support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"

namespace zae::test {

namespace {

std::string index_str(const std::vector<int64_t>& idx) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
  os << ']';
  return os.str();
}

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

// Offsets in elements, relative to raw_data(), of a view's elements in row-major order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  const Shape& sh = t.shape();
  const Shape& st = t.strides();
  std::vector<int64_t> idx(sh.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(off);
    for (size_t d = sh.size(); d-- > 0;) {
      if (++idx[d] < sh[d]) {
        off += st[d];
        break;
      }
      off -= st[d] * (sh[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

Tensor from_values(const std::vector<double>& vals, const Shape& shape) {
  if (shape.empty()) return scalar_tensor(vals.at(0), {.dtype = DType::float64});
  return tensor<double>(vals, shape);
}

std::vector<double> values_of(const Tensor& t) {
  NoGradGuard no_grad;
  return t.to_vector<double>();
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

std::string num_str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    double d = std::fabs(a[i] - b[i]);
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

std::string label(const GradcheckOptions& opts, size_t i, const Tensor& t) {
  std::ostringstream os;
  os << "input " << i;
  if (i < opts.input_labels.size() && !opts.input_labels[i].empty()) os << " '" << opts.input_labels[i] << "'";
  if (t.defined()) os << " (shape " << shape_str(t.shape()) << ", strides " << shape_str(t.strides()) << ")";
  return os.str();
}

// Restores one perturbed element even when f throws.
struct RestoreOnExit {
  double* p;
  double value;
  ~RestoreOnExit() { *p = value; }
};

struct Analytic {
  std::vector<Tensor> outputs;  // forward results in grad mode
  std::vector<std::vector<double>> out_vals;
  std::vector<std::vector<double>> grads;  // per differentiable input, row-major over its view
};

class Checker {
 public:
  Checker(const MultiGradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opts, GradcheckResult& r)
      : f_(f), inputs_(std::move(inputs)), opts_(opts), r_(r) {}

  void run() {
    validate_inputs();
    Analytic first = analytic(/*make_w=*/true);
    check_forward_modes(first);
    check_layout_invariance(first);
    if (opts_.check_determinism) check_determinism(first);
    compare_numeric(first);
  }

 private:
  void validate_inputs() {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const Tensor& x = inputs_[i];
      if (!x.defined() || !x.requires_grad()) continue;
      if (x.dtype() != DType::float64 || !x.device().is_cpu())
        throw std::invalid_argument("gradcheck: " + label(opts_, i, x) +
                                    " requires grad but is not a float64 CPU tensor");
      diff_.push_back(i);
    }
    if (diff_.empty()) throw std::invalid_argument("gradcheck: no input requires grad");
  }

  std::vector<Tensor> call_f() {
    std::vector<Tensor> outs = f_(inputs_);
    if (outs.empty()) throw std::invalid_argument("gradcheck: f returned no outputs");
    for (size_t k = 0; k < outs.size(); ++k)
      if (!outs[k].defined()) throw std::invalid_argument("gradcheck: output " + std::to_string(k) + " is undefined");
    return outs;
  }

  Analytic analytic(bool make_w) {
    Analytic a;
    a.outputs = call_f();
    if (make_w) {
      std::mt19937_64 rng(opts_.seed);
      std::uniform_real_distribution<double> u(-1.0, 1.0);
      for (size_t k = 0; k < a.outputs.size(); ++k) {
        const Tensor& y = a.outputs[k];
        if (y.dtype() != DType::float64)
          problem("output " + std::to_string(k) + " has dtype " + std::string(dtype_name(y.dtype())) +
                  " (expected float64 for float64 inputs)");
        if (!y.requires_grad())
          problem("output " + std::to_string(k) + " (shape " + shape_str(y.shape()) +
                  ") does not require grad: the op recorded no autograd node");
        std::vector<double> w(static_cast<size_t>(y.numel()));
        for (double& v : w) v = u(rng);
        w_.push_back(std::move(w));
      }
    }
    for (const Tensor& y : a.outputs) a.out_vals.push_back(values_of(y));

    std::vector<Tensor> roots, root_grads, wrt;
    for (size_t k = 0; k < a.outputs.size(); ++k) {
      if (!a.outputs[k].requires_grad()) continue;
      roots.push_back(a.outputs[k]);
      root_grads.push_back(from_values(w_[k], a.outputs[k].shape()).to(a.outputs[k].dtype()));
    }
    for (size_t i : diff_) wrt.push_back(inputs_[i]);
    std::vector<Tensor> g;
    // retain_graph: a non-leaf input's own node (e.g. the PermuteBackward of a transposed
    // variant) is shared by both runs of the determinism check, and the engine also
    // executes (and would free) nodes below the requested inputs.
    if (!roots.empty()) g = autograd::grad(roots, wrt, root_grads, /*retain_graph=*/true, /*allow_unused=*/true);
    g.resize(wrt.size());
    for (size_t j = 0; j < wrt.size(); ++j) {
      const Tensor& x = wrt[j];
      std::vector<double> gv;
      if (!g[j].defined()) {
        gv.assign(static_cast<size_t>(x.numel()), 0.0);  // unused input: zero gradient
      } else if (g[j].shape() != x.shape()) {
        if (make_w) problem("gradient of " + label(opts_, diff_[j], x) + " has shape " + shape_str(g[j].shape()));
        gv.assign(static_cast<size_t>(x.numel()), std::nan(""));
      } else {
        if (make_w && g[j].dtype() != x.dtype())
          problem("gradient of " + label(opts_, diff_[j], x) + " has dtype " + std::string(dtype_name(g[j].dtype())) +
                  " (expected " + std::string(dtype_name(x.dtype())) + ")");
        if (make_w && g[j].device() != x.device())
          problem("gradient of " + label(opts_, diff_[j], x) + " is on another device");
        gv = values_of(g[j]);
      }
      a.grads.push_back(std::move(gv));
    }
    return a;
  }

  double project(const std::vector<Tensor>& outs) const {
    if (outs.size() != w_.size())
      throw std::runtime_error("gradcheck: f returned " + std::to_string(outs.size()) + " outputs, first call " +
                               std::to_string(w_.size()));
    double s = 0.0;
    for (size_t k = 0; k < outs.size(); ++k) {
      std::vector<double> v = values_of(outs[k]);
      if (v.size() != w_[k].size())
        throw std::runtime_error("gradcheck: output " + std::to_string(k) + " changed its size between calls");
      for (size_t e = 0; e < v.size(); ++e) s += v[e] * w_[k][e];
    }
    return s;
  }

  void check_forward_modes(const Analytic& a) {
    NoGradGuard no_grad;
    std::vector<Tensor> outs = call_f();
    for (size_t k = 0; k < outs.size() && k < a.out_vals.size(); ++k) {
      std::vector<double> v = values_of(outs[k]);
      if (v.size() != a.out_vals[k].size() || !same_bits(v, a.out_vals[k]))
        problem("output " + std::to_string(k) + " differs between grad mode and no-grad mode (max |diff| " +
                num_str(max_abs_diff(v, a.out_vals[k])) + ")");
    }
  }

  // The same logical inputs laid out contiguously must give the same outputs (up to
  // summation order): catches forwards that mishandle strides, offsets or stride 0.
  void check_layout_invariance(const Analytic& a) {
    NoGradGuard no_grad;
    std::vector<Tensor> dense = inputs_;
    bool any = false;
    for (Tensor& t : dense) {
      if (!t.defined() || t.is_contiguous()) continue;
      Tensor c = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
      copy_into(c, t);
      t = c;
      any = true;
    }
    if (!any) return;
    std::vector<Tensor> outs = f_(dense);
    for (size_t k = 0; k < outs.size() && k < a.out_vals.size(); ++k) {
      std::vector<double> v = values_of(outs[k]);
      bool same = v.size() == a.out_vals[k].size();
      for (size_t e = 0; same && e < v.size(); ++e)
        same = std::fabs(v[e] - a.out_vals[k][e]) <= 1e-10 + 1e-9 * std::fabs(v[e]) ||
               (std::isnan(v[e]) && std::isnan(a.out_vals[k][e]));
      if (!same)
        problem("output " + std::to_string(k) + " differs between the given input layout and a contiguous copy of " +
                "the same values (max |diff| " + num_str(max_abs_diff(v, a.out_vals[k])) +
                "): the forward mishandles strides, offsets or broadcast (stride 0) inputs");
    }
  }

  void check_determinism(const Analytic& first) {
    Analytic second = analytic(/*make_w=*/false);
    for (size_t k = 0; k < first.out_vals.size(); ++k)
      if (!same_bits(first.out_vals[k], second.out_vals[k]))
        problem("nondeterministic forward: output " + std::to_string(k) + " differs between two runs (max |diff| " +
                num_str(max_abs_diff(first.out_vals[k], second.out_vals[k])) + ")");
    for (size_t j = 0; j < first.grads.size(); ++j)
      if (!same_bits(first.grads[j], second.grads[j]))
        problem("nondeterministic backward: gradient of " + label(opts_, diff_[j], inputs_[diff_[j]]) +
                " differs between two runs (max |diff| " +
                num_str(max_abs_diff(first.grads[j], second.grads[j])) + ")");
  }

  void compare_numeric(const Analytic& a) {
    NoGradGuard no_grad;
    int shown = 0;
    std::ostringstream details;
    for (size_t j = 0; j < diff_.size(); ++j) {
      const Tensor& x = inputs_[diff_[j]];
      std::vector<int64_t> offs = element_offsets(x);
      // Storage element -> (first view position, summed analytic gradient, alias count).
      std::map<int64_t, size_t> slot_of;
      std::vector<int64_t> first_pos;
      std::vector<double> an;
      std::vector<int> aliases;
      for (size_t e = 0; e < offs.size(); ++e) {
        auto [it, fresh] = slot_of.emplace(offs[e], an.size());
        if (fresh) {
          first_pos.push_back(static_cast<int64_t>(e));
          an.push_back(0.0);
          aliases.push_back(0);
        }
        an[it->second] += a.grads[j][e];
        ++aliases[it->second];
      }
      double* base = static_cast<double*>(x.raw_data());
      for (const auto& [off, s] : slot_of) {
        double* p = base + off;
        const double orig = *p;
        {
          RestoreOnExit restore{p, orig};
          const double xp = orig + opts_.eps, xm = orig - opts_.eps;
          *p = xp;
          const double plus = project(call_f());
          *p = xm;
          const double minus = project(call_f());
          const double num = (plus - minus) / (xp - xm);
          record(j, an[s], num, aliases[s], first_pos[s], x, shown, details);
        }
      }
    }
    std::ostringstream os;
    os << "checked " << r_.elements_checked << " elements of " << diff_.size() << " differentiable input(s)";
    if (r_.worst_input >= 0) {
      const Tensor& x = inputs_[static_cast<size_t>(r_.worst_input)];
      os << "; worst: " << label(opts_, static_cast<size_t>(r_.worst_input), x) << " element "
         << index_str(r_.worst_index) << ": analytic " << r_.worst_analytic << ", numeric " << r_.worst_numeric
         << ", |diff| " << r_.worst_abs_error << " (" << r_.worst_score << "x the tolerance)";
    }
    if (r_.mismatches > 0) os << "\n" << r_.mismatches << " element(s) outside tolerance:" << details.str();
    for (const std::string& p : r_.problems) os << "\nproblem: " << p;
    r_.report = os.str();
    if (r_.mismatches > 0 || !r_.problems.empty()) r_.status = GradcheckResult::Status::failed;
  }

  void record(size_t j, double an, double num, int aliases, int64_t pos, const Tensor& x, int& shown,
              std::ostringstream& details) {
    ++r_.elements_checked;
    const double diff = std::fabs(an - num);
    const double tol = opts_.atol + opts_.rtol * std::fabs(num);
    double score = diff / tol;
    if (std::isnan(score)) score = std::numeric_limits<double>::infinity();
    std::vector<int64_t> idx = unravel(pos, x.shape());
    if (score > 1.0) {
      ++r_.mismatches;
      if (shown++ < 8) {
        details << "\n  " << label(opts_, diff_[j], x) << " element " << index_str(idx);
        if (aliases > 1) details << " (x" << aliases << " aliases)";
        details << ": analytic " << an << ", numeric " << num;
      }
    }
    if (r_.worst_input < 0 || score > r_.worst_score) {
      r_.worst_score = score;
      r_.worst_abs_error = diff;
      r_.worst_analytic = an;
      r_.worst_numeric = num;
      r_.worst_input = static_cast<int>(diff_[j]);
      r_.worst_index = std::move(idx);
    }
  }

  void problem(std::string p) { r_.problems.push_back(std::move(p)); }

  const MultiGradFn& f_;
  std::vector<Tensor> inputs_;
  const GradcheckOptions& opts_;
  GradcheckResult& r_;
  std::vector<size_t> diff_;            // indices of inputs that require grad
  std::vector<std::vector<double>> w_;  // upstream gradient per output
};

}  // namespace

GradcheckResult gradcheck_multi(const MultiGradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opts) {
  GradcheckResult r;
  try {
    Checker(f, std::move(inputs), opts, r).run();
  } catch (const std::exception& e) {
    r.status = GradcheckResult::Status::error;
    r.error = e.what();
    r.report = std::string("could not run: ") + e.what();
  }
  return r;
}

GradcheckResult gradcheck(const GradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opts) {
  return gradcheck_multi([&f](const std::vector<Tensor>& x) { return std::vector<Tensor>{f(x)}; }, std::move(inputs),
                         opts);
}

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::contiguous:
      return "contiguous";
    case Variant::transposed:
      return "transposed";
    case Variant::sliced:
      return "sliced";
    case Variant::expanded:
      return "expanded";
  }
  return "unknown";
}

bool variant_applies(const Shape& shape, Variant v) {
  auto big = std::count_if(shape.begin(), shape.end(), [](int64_t s) { return s > 1; });
  switch (v) {
    case Variant::contiguous:
      return true;
    case Variant::transposed:
      return big >= 2;
    case Variant::sliced:
      return !shape.empty();
    case Variant::expanded:
      return big >= 1;
  }
  return false;
}

Tensor make_variant(const Tensor& base_in, Variant v) {
  const Shape shape = base_in.shape();
  if (!variant_applies(shape, v))
    throw std::invalid_argument(std::string("make_variant: variant ") + variant_name(v) + " does not apply to shape " +
                                shape_str(shape));
  Tensor leaf;
  {
    NoGradGuard no_grad;
    Tensor base = from_values(values_of(base_in), shape);
    switch (v) {
      case Variant::contiguous:
        leaf = base;
        break;
      case Variant::transposed: {
        Shape rev(shape.size());
        for (size_t d = 0; d < shape.size(); ++d) rev[d] = static_cast<int64_t>(shape.size() - 1 - d);
        leaf = base.permute(rev).clone();
        break;
      }
      case Variant::sliced: {
        Shape wide = shape;
        wide.back() *= 2;
        leaf = full(wide, 99.0, {.dtype = DType::float64});
        copy_into(leaf.slice(-1, 0, wide.back(), 2), base);
        break;
      }
      case Variant::expanded: {
        int64_t d = 0;
        while (shape[static_cast<size_t>(d)] <= 1) ++d;
        leaf = base.narrow(d, 0, 1).clone();
        break;
      }
    }
  }
  leaf.requires_grad_(true);
  switch (v) {
    case Variant::contiguous:
      return leaf;
    case Variant::transposed: {
      Shape rev(shape.size());
      for (size_t d = 0; d < shape.size(); ++d) rev[d] = static_cast<int64_t>(shape.size() - 1 - d);
      return leaf.permute(rev);
    }
    case Variant::sliced:
      return leaf.slice(-1, 0, leaf.shape().back(), 2);
    case Variant::expanded:
      return leaf.expand(shape);
  }
  return leaf;
}

}  // namespace zae::test
