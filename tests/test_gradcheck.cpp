// The float64 central-difference gradient check of every differentiable op
// (DESIGN.md convention 9(b)): one table row per op and case; each row expands into
// one test per input layout (contiguous, transposed, sliced, expanded where asked),
// listed by ctest as GradCheck/Ops.grad/<row>[_<layout>].
//
// Invariants: inputs are drawn from fixed seeds (a hash of the row name, shared by
// its layouts) within each op's smooth domain: log/sqrt/rsqrt/pow/div on positive
// values; abs/relu/norm_p1 on values >= 0.2 away from 0; amax/max/norm_inf on distinct
// magnitudes; clamp bounds and maximum/minimum pairs on continuous random values (a
// draw within eps = 1e-6 of a kink has negligible probability and fixed seeds make it
// reproducible). The CoversEveryOp test fails when an op in the hard-coded list has no row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/generator.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/index.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/unary.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace zae::test {
namespace {

using Xs = std::vector<Tensor>;
using In = InputSpec;

// Shorthands for the table: U uniform, P positive, NZ nonzero, D distinct magnitudes
// (all float64 requiring grad), Idx / IdxV int64 indices, Mask bool, Const: no grad.

In make_in(Shape s, Domain g, bool requires_grad = true) {
  In in;
  in.shape = std::move(s);
  in.domain = g;
  in.requires_grad = requires_grad;
  return in;
}
In U(Shape s) { return make_in(std::move(s), Domain::uniform); }
In P(Shape s) { return make_in(std::move(s), Domain::positive); }
In NZ(Shape s) { return make_in(std::move(s), Domain::nonzero); }
In D(Shape s) { return make_in(std::move(s), Domain::distinct); }
In Idx(Shape s, int64_t high) {
  In in = make_in(std::move(s), Domain::index, false);
  in.high = high;
  return in;
}
In IdxV(Shape s, std::vector<double> v) {
  In in = make_in(std::move(s), Domain::index, false);
  in.values = std::move(v);
  return in;
}
In Mask(Shape s) { return make_in(std::move(s), Domain::mask, false); }
In Const(In in) {
  in.requires_grad = false;
  return in;
}

struct Case {
  std::string name;
  std::vector<std::string> covers;  // op names (and "op:noncontig" / "op:expanded" tags)
  std::vector<In> ins;
  MultiGradFn fn;
  GradcheckOptions opts;
  uint64_t seed = 0;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// The layouts a row is checked under: one variant for every differentiable input,
// or `mixed`: transposed, sliced, expanded, contiguous in turn across the inputs
// (rows with fewer than two differentiable inputs skip it).
enum class Layout { contiguous, transposed, sliced, expanded, mixed };
constexpr Layout C = Layout::contiguous, T = Layout::transposed, S = Layout::sliced, E = Layout::expanded,
                 M = Layout::mixed;
static_assert(static_cast<int>(Layout::expanded) == static_cast<int>(Variant::expanded) &&
              static_cast<int>(Layout::transposed) == static_cast<int>(Variant::transposed));
const std::vector<Layout> kCTS = {C, T, S, M};
const std::vector<Layout> kAll = {C, T, S, E, M};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous:
      return "contiguous";
    case Layout::transposed:
      return "transposed";
    case Layout::sliced:
      return "sliced";
    case Layout::expanded:
      return "expanded";
    case Layout::mixed:
      return "mixed";
  }
  return "unknown";
}

template <class F>
MultiGradFn one(F f) {
  return [f](const Xs& x) { return Xs{f(x)}; };
}
#define ONE(...) one([](const Xs& x) -> Tensor { return __VA_ARGS__; })
#define MANY(...) MultiGradFn([](const Xs& x) -> Xs { return __VA_ARGS__; })

class Table {
 public:
  /// Adds one test per layout; a layout that changes no input is skipped.
  void add(const std::string& name, std::vector<std::string> covers, std::vector<In> ins, MultiGradFn fn,
           const std::vector<Layout>& layouts = kCTS, GradcheckOptions opts = {}) {
    for (Layout l : layouts) {
      Case c{l == C ? name : name + "_" + layout_name(l), covers, ins, fn, opts, fnv1a(name)};
      if (!apply(l, c.ins)) continue;
      if (l != C)
        for (const std::string& op : covers) c.covers.push_back(op + (l == E ? ":expanded" : ":noncontig"));
      cases.push_back(std::move(c));
    }
  }
  std::vector<Case> cases;

 private:
  static bool differentiable(const In& in) {
    return in.requires_grad && in.domain != Domain::index && in.domain != Domain::mask;
  }
  // Sets the inputs' variants for layout l; false when the layout changes nothing new.
  static bool apply(Layout l, std::vector<In>& ins) {
    if (l == C) return true;
    if (l != M) {
      const Variant v = static_cast<Variant>(static_cast<int>(l));
      bool changed = false;
      for (In& in : ins)
        if (differentiable(in) && variant_applies(in.shape, v)) {
          in.variant = v;
          changed = true;
        }
      return changed;
    }
    const Variant cycle[] = {Variant::transposed, Variant::sliced, Variant::expanded, Variant::contiguous};
    std::set<Variant> used;
    size_t next = 0;
    for (In& in : ins) {
      if (!differentiable(in)) continue;
      for (size_t k = 0; k < 4; ++k, ++next)
        if (variant_applies(in.shape, cycle[next % 4])) break;
      in.variant = cycle[next++ % 4];
      used.insert(in.variant);
    }
    return used.size() >= 2;
  }
};

void add_unary(Table& t) {
  t.add("neg", {"neg"}, {U({3, 4})}, ONE(neg(x[0])), kAll);
  t.add("abs", {"abs"}, {NZ({3, 4})}, ONE(zae::abs(x[0])), kAll);
  t.add("exp", {"exp"}, {U({3, 4})}, ONE(zae::exp(x[0])), kAll);
  t.add("log", {"log"}, {P({3, 4})}, ONE(zae::log(x[0])), kAll);
  t.add("sqrt", {"sqrt"}, {P({3, 4})}, ONE(zae::sqrt(x[0])), kAll);
  t.add("rsqrt", {"rsqrt"}, {P({3, 4})}, ONE(rsqrt(x[0])), kAll);
  t.add("sin", {"sin"}, {U({3, 4})}, ONE(zae::sin(x[0])), kAll);
  t.add("cos", {"cos"}, {U({3, 4})}, ONE(zae::cos(x[0])), kAll);
  t.add("tanh", {"tanh"}, {U({3, 4})}, ONE(zae::tanh(x[0])), kAll);
  t.add("sigmoid", {"sigmoid"}, {U({3, 4})}, ONE(sigmoid(x[0])), kAll);
  t.add("relu", {"relu"}, {NZ({3, 4})}, ONE(relu(x[0])), kAll);
  t.add("gelu", {"gelu"}, {U({3, 4})}, ONE(gelu(x[0])), kAll);
  t.add("gelu_tanh", {"gelu_tanh"}, {U({3, 4})}, ONE(gelu(x[0], GeluApprox::tanh)), kAll);
  t.add("silu", {"silu"}, {U({3, 4})}, ONE(silu(x[0])), kAll);
  t.add("pow_scalar_2_5", {"pow_scalar"}, {P({3, 4})}, ONE(zae::pow(x[0], 2.5)), kAll);
  t.add("pow_scalar_neg1_5", {"pow_scalar"}, {P({3, 4})}, ONE(zae::pow(x[0], -1.5)));
  t.add("pow_scalar_3_negative_base", {"pow_scalar"}, {U({3, 4})}, ONE(zae::pow(x[0], 3.0)));
  t.add("pow_scalar_2", {"pow_scalar"}, {U({3, 4})}, ONE(zae::pow(x[0], 2.0)));
  t.add("pow_tensor", {"pow_tensor"}, {P({3, 4}), U({3, 4})}, ONE(zae::pow(x[0], x[1])), kAll);
  t.add("pow_tensor_broadcast_3x1_1x4", {"pow_tensor", "pow_tensor:broadcast"}, {P({3, 1}), U({1, 4})},
        ONE(zae::pow(x[0], x[1])));
  t.add("pow_tensor_broadcast_234_4", {"pow_tensor", "pow_tensor:broadcast"}, {P({2, 3, 4}), U({4})},
        ONE(zae::pow(x[0], x[1])));
  t.add("clamp_min", {"clamp_min"}, {U({3, 4})}, ONE(clamp(x[0], -0.3, std::nullopt)), kAll);
  t.add("clamp_max", {"clamp_max"}, {U({3, 4})}, ONE(clamp(x[0], std::nullopt, 0.4)), kAll);
  t.add("clamp_both", {"clamp_both"}, {U({3, 4})}, ONE(clamp(x[0], -0.5, 0.5)), kAll);
}

// Each binary op: same shape, [3,1] vs [1,4], [2,3,4] vs [4], and every layout.
void add_binary_family(Table& t, const std::string& op, const In& a, const In& b, const MultiGradFn& fn) {
  auto with = [](In in, Shape s) {
    in.shape = std::move(s);
    return in;
  };
  t.add(op, {op}, {with(a, {3, 4}), with(b, {3, 4})}, fn, kAll);
  t.add(op + "_broadcast_3x1_1x4", {op, op + ":broadcast"}, {with(a, {3, 1}), with(b, {1, 4})}, fn, kAll);
  t.add(op + "_broadcast_234_4", {op, op + ":broadcast"}, {with(a, {2, 3, 4}), with(b, {4})}, fn, kAll);
  t.add(op + "_broadcast_4_234", {op, op + ":broadcast"}, {with(a, {4}), with(b, {2, 3, 4})}, fn);
}

void add_binary(Table& t) {
  add_binary_family(t, "add", U({}), U({}), ONE(add(x[0], x[1])));
  add_binary_family(t, "add_alpha", U({}), U({}), ONE(add(x[0], x[1], -2.5)));
  add_binary_family(t, "sub", U({}), U({}), ONE(sub(x[0], x[1])));
  add_binary_family(t, "sub_alpha", U({}), U({}), ONE(sub(x[0], x[1], 0.5)));
  add_binary_family(t, "mul", U({}), U({}), ONE(mul(x[0], x[1])));
  add_binary_family(t, "div", U({}), P({}), ONE(div(x[0], x[1])));
  add_binary_family(t, "maximum", U({}), U({}), ONE(maximum(x[0], x[1])));
  add_binary_family(t, "minimum", U({}), U({}), ONE(minimum(x[0], x[1])));
  t.add("add_one_side_grad", {"add"}, {U({3, 4}), Const(U({3, 4}))}, ONE(add(x[0], x[1])));
  t.add("mul_same_input", {"mul"}, {U({3, 4})}, ONE(mul(x[0], x[0])));
  t.add("add_scalar", {"add_scalar"}, {U({3, 4})}, ONE(add(x[0], 2.5)), kAll);
  t.add("sub_scalar", {"sub_scalar"}, {U({3, 4})}, ONE(sub(x[0], 1.5)), kAll);
  t.add("mul_scalar", {"mul_scalar"}, {U({3, 4})}, ONE(mul(x[0], -1.7)), kAll);
  t.add("div_scalar", {"div_scalar"}, {U({3, 4})}, ONE(div(x[0], 3.0)), kAll);
  t.add("operator_rsub_scalar", {"operator_rsub"}, {U({3, 4})}, ONE(2.0 - x[0]));
  t.add("operator_rdiv_scalar", {"operator_rdiv"}, {P({3, 4})}, ONE(2.0 / x[0]));
  t.add("operators", {"operators"}, {U({3, 4}), P({3, 4})},
        ONE((-x[0]) + x[0] * x[1] - x[0] / x[1] + (x[0] + 1.0) * 2.0 - (x[1] - 0.5) / 4.0 + 3.0 * x[0] + (1.0 + x[1])));
  t.add("where", {"where"}, {Mask({3, 4}), U({3, 4}), U({3, 4})}, ONE(where(x[0], x[1], x[2])), kAll);
  t.add("where_broadcast", {"where", "where:broadcast"}, {Mask({3, 1}), U({1, 4}), U({3, 4})},
        ONE(where(x[0], x[1], x[2])));
  t.add("where_broadcast_234", {"where", "where:broadcast"}, {Mask({2, 3, 4}), U({4}), U({3, 1})},
        ONE(where(x[0], x[1], x[2])));
  t.add("masked_fill", {"masked_fill"}, {U({3, 4}), Mask({3, 4})}, ONE(masked_fill(x[0], x[1], -2.0)), kAll);
  t.add("masked_fill_broadcast", {"masked_fill", "masked_fill:broadcast"}, {U({2, 3, 4}), Mask({1, 4})},
        ONE(masked_fill(x[0], x[1], 0.25)));
  t.add("sum_to", {"sum_to"}, {U({2, 3, 4})}, ONE(sum_to(x[0], {3, 1})));
}

void add_reduce(Table& t) {
  t.add("sum_all", {"sum"}, {U({2, 3, 4})}, ONE(sum(x[0])), kAll);
  t.add("sum_dim1", {"sum"}, {U({2, 3, 4})}, ONE(sum(x[0], {1})), kAll);
  t.add("sum_dims02_keepdim", {"sum", "sum_keepdim"}, {U({2, 3, 4})}, ONE(sum(x[0], {0, 2}, true)), kAll);
  t.add("sum_neg_dim", {"sum"}, {U({2, 3, 4})}, ONE(sum(x[0], {-1})));
  t.add("mean_all", {"mean"}, {U({2, 3, 4})}, ONE(mean(x[0])), kAll);
  t.add("mean_dim1", {"mean"}, {U({2, 3, 4})}, ONE(mean(x[0], {1})), kAll);
  t.add("mean_dims02_keepdim", {"mean", "mean_keepdim"}, {U({2, 3, 4})}, ONE(mean(x[0], {0, 2}, true)));
  t.add("var_all_c1", {"var_c1"}, {U({2, 3, 4})}, ONE(var(x[0])), kAll);
  t.add("var_all_c0", {"var_c0"}, {U({2, 3, 4})}, ONE(var(x[0], {}, 0)), kAll);
  t.add("var_dim1_c1", {"var_c1"}, {U({2, 3, 4})}, ONE(var(x[0], {1}, 1)), kAll);
  t.add("var_dims02_c0_keepdim", {"var_c0"}, {U({2, 3, 4})}, ONE(var(x[0], {0, 2}, 0, true)));
  t.add("amax_all", {"amax"}, {D({2, 3, 4})}, ONE(amax(x[0])), kAll);
  t.add("amax_dim1", {"amax"}, {D({2, 3, 4})}, ONE(amax(x[0], {1})), kAll);
  t.add("amax_dims02_keepdim", {"amax"}, {D({2, 3, 4})}, ONE(amax(x[0], {0, 2}, true)));
  t.add("amin_all", {"amin"}, {D({2, 3, 4})}, ONE(amin(x[0])), kAll);
  t.add("amin_dim1", {"amin"}, {D({2, 3, 4})}, ONE(amin(x[0], {1})), kAll);
  t.add("amin_dims02_keepdim", {"amin"}, {D({2, 3, 4})}, ONE(amin(x[0], {0, 2}, true)));
  t.add("max_dim1", {"max_dim"}, {D({2, 3, 4})}, ONE(zae::max(x[0], 1).first), kAll);
  t.add("max_dim0_keepdim", {"max_dim"}, {D({2, 3, 4})}, ONE(zae::max(x[0], 0, true).first));
  t.add("max_dim_neg", {"max_dim"}, {D({3, 4})}, ONE(zae::max(x[0], -1).first));
  t.add("min_dim1", {"min_dim"}, {D({2, 3, 4})}, ONE(zae::min(x[0], 1).first), kAll);
  t.add("min_dim0_keepdim", {"min_dim"}, {D({2, 3, 4})}, ONE(zae::min(x[0], 0, true).first));
  t.add("logsumexp_dim1", {"logsumexp"}, {U({2, 3, 4})}, ONE(logsumexp(x[0], {1})), kAll);
  t.add("logsumexp_dims02_keepdim", {"logsumexp"}, {U({2, 3, 4})}, ONE(logsumexp(x[0], {0, 2}, true)), kAll);
  t.add("logsumexp_all", {"logsumexp"}, {U({3, 4})}, ONE(logsumexp(x[0], {0, 1})));
  t.add("norm_p1_all", {"norm_p1"}, {NZ({2, 3, 4})}, ONE(norm(x[0], 1.0)), kAll);
  t.add("norm_p1_dim1", {"norm_p1"}, {NZ({2, 3, 4})}, ONE(norm(x[0], 1.0, {1})));
  t.add("norm_p2_all", {"norm_p2"}, {U({2, 3, 4})}, ONE(norm(x[0])), kAll);
  t.add("norm_p2_dim2_keepdim", {"norm_p2"}, {U({2, 3, 4})}, ONE(norm(x[0], 2.0, {2}, true)), kAll);
  t.add("norm_p3_all", {"norm_p3"}, {NZ({2, 3, 4})}, ONE(norm(x[0], 3.0)), kAll);
  t.add("norm_p3_dim1", {"norm_p3"}, {NZ({2, 3, 4})}, ONE(norm(x[0], 3.0, {1})));
  const double inf = std::numeric_limits<double>::infinity();
  t.add("norm_inf_all", {"norm_inf"}, {D({2, 3, 4})}, one([inf](const Xs& x) { return norm(x[0], inf); }), kAll);
  t.add("norm_inf_dim1", {"norm_inf"}, {D({2, 3, 4})}, one([inf](const Xs& x) { return norm(x[0], inf, {1}); }));
}

void add_linalg(Table& t) {
  auto mm = ONE(matmul(x[0], x[1]));
  t.add("matmul_1d_1d", {"matmul_1d_1d"}, {U({4}), U({4})}, mm, kAll);
  t.add("matmul_2d_1d", {"matmul_2d_1d"}, {U({3, 4}), U({4})}, mm, kAll);
  t.add("matmul_1d_2d", {"matmul_1d_2d"}, {U({4}), U({4, 3})}, mm, kAll);
  t.add("matmul_2d_2d", {"matmul_2d_2d"}, {U({3, 4}), U({4, 5})}, mm, kAll);
  t.add("matmul_3d_2d", {"matmul_3d_2d"}, {U({2, 3, 4}), U({4, 5})}, mm, kAll);
  t.add("matmul_2d_3d", {"matmul_3d_2d"}, {U({3, 4}), U({2, 4, 5})}, mm);
  t.add("matmul_3d_3d", {"matmul_3d_3d"}, {U({2, 3, 4}), U({2, 4, 5})}, mm, kAll);
  t.add("matmul_4d_3d", {"matmul_4d_3d"}, {U({2, 1, 3, 4}), U({5, 4, 2})}, mm, kAll);
  t.add("matmul_method", {"matmul_method"}, {U({3, 4}), U({4, 2})}, ONE(x[0].matmul(x[1])));
  t.add("linear_bias", {"linear_bias"}, {U({4, 3}), U({5, 3}), U({5})}, ONE(linear(x[0], x[1], x[2])), kAll);
  t.add("linear_nobias", {"linear_nobias"}, {U({4, 3}), U({5, 3})}, ONE(linear(x[0], x[1])), kAll);
  t.add("linear_3d_bias", {"linear_3d"}, {U({2, 3, 3}), U({5, 3}), U({5})}, ONE(linear(x[0], x[1], x[2])), kAll);
  t.add("linear_3d_nobias", {"linear_3d"}, {U({2, 3, 3}), U({5, 3})}, ONE(linear(x[0], x[1])));
}

void add_nn(Table& t) {
  t.add("softmax_last", {"softmax"}, {U({3, 4})}, ONE(softmax(x[0], -1)), kAll);
  t.add("softmax_dim0", {"softmax"}, {U({3, 4})}, ONE(softmax(x[0], 0)), kAll);
  t.add("softmax_3d_dim1", {"softmax"}, {U({2, 3, 4})}, ONE(softmax(x[0], 1)), kAll);
  t.add("log_softmax_last", {"log_softmax"}, {U({3, 4})}, ONE(log_softmax(x[0], -1)), kAll);
  t.add("log_softmax_dim0", {"log_softmax"}, {U({3, 4})}, ONE(log_softmax(x[0], 0)), kAll);
  t.add("log_softmax_3d_dim1", {"log_softmax"}, {U({2, 3, 4})}, ONE(log_softmax(x[0], 1)), kAll);
  t.add("layer_norm_wb", {"layer_norm"}, {U({2, 3, 4}), U({4}), U({4})}, ONE(layer_norm(x[0], {4}, x[1], x[2])));
  t.add("layer_norm_nowb", {"layer_norm_nowb"}, {U({2, 3, 4})}, ONE(layer_norm(x[0], {4})));
  t.add("layer_norm_w_only", {"layer_norm"}, {U({3, 4}), U({4})}, ONE(layer_norm(x[0], {4}, x[1])));
  t.add("layer_norm_b_only", {"layer_norm"}, {U({3, 4}), U({4})}, ONE(layer_norm(x[0], {4}, Tensor(), x[1])));
  t.add("layer_norm_2d_shape", {"layer_norm_2d"}, {U({2, 3, 4}), U({3, 4}), U({3, 4})},
        ONE(layer_norm(x[0], {3, 4}, x[1], x[2], 1e-3)));

  const std::vector<double> tgt = {1, 4, 0, 3};
  auto opt = [](Reduction r, int64_t ignore_index = -100, double smoothing = 0.0) {
    CrossEntropyOptions o;
    o.reduction = r;
    o.ignore_index = ignore_index;
    o.label_smoothing = smoothing;
    return o;
  };
  const Reduction r_mean = Reduction::mean, r_sum = Reduction::sum, r_none = Reduction::none;
  auto ce = [](CrossEntropyOptions o) {
    return one([o](const Xs& x) {
      CrossEntropyOptions oo = o;
      if (x.size() > 2) oo.weight = x[2];
      return cross_entropy(x[0], x[1], oo);
    });
  };
  t.add("cross_entropy_mean", {"cross_entropy_mean"}, {U({4, 5}), IdxV({4}, tgt)}, ce(opt(r_mean)));
  t.add("cross_entropy_sum", {"cross_entropy_sum"}, {U({4, 5}), IdxV({4}, tgt)}, ce(opt(r_sum)));
  t.add("cross_entropy_none", {"cross_entropy_none"}, {U({4, 5}), IdxV({4}, tgt)}, ce(opt(r_none)));
  t.add("cross_entropy_ignore_default", {"cross_entropy_ignore_index"}, {U({4, 5}), IdxV({4}, {1, -100, 0, 3})},
        ce(opt(r_mean)));
  t.add("cross_entropy_ignore_index_2", {"cross_entropy_ignore_index"}, {U({4, 5}), IdxV({4}, {2, 4, 2, 3})},
        ce(opt(r_mean, 2)));
  t.add("cross_entropy_ignore_none", {"cross_entropy_ignore_index"}, {U({4, 5}), IdxV({4}, {2, 4, 2, 3})},
        ce(opt(r_none, 2)));
  t.add("cross_entropy_label_smoothing", {"cross_entropy_label_smoothing"}, {U({4, 5}), IdxV({4}, tgt)},
        ce(opt(r_mean, -100, 0.1)));
  t.add("cross_entropy_label_smoothing_sum", {"cross_entropy_label_smoothing"}, {U({4, 5}), IdxV({4}, tgt)},
        ce(opt(r_sum, -100, 0.2)));
  t.add("cross_entropy_weight", {"cross_entropy_weight"}, {U({4, 5}), IdxV({4}, tgt), Const(P({5}))}, ce(opt(r_mean)));
  t.add("cross_entropy_weight_none", {"cross_entropy_weight"}, {U({4, 5}), IdxV({4}, tgt), Const(P({5}))},
        ce(opt(r_none)));
  t.add("cross_entropy_weight_ignore_smoothing", {"cross_entropy_weight"},
        {U({4, 5}), IdxV({4}, {1, 4, 2, 3}), Const(P({5}))}, ce(opt(r_mean, 2, 0.1)));
  t.add("cross_entropy_4d", {"cross_entropy_4d"}, {U({2, 3, 2, 2}), Idx({2, 2, 2}, 3)}, ce(opt(r_mean)));
  t.add("cross_entropy_4d_none", {"cross_entropy_4d"}, {U({2, 3, 2, 2}), Idx({2, 2, 2}, 3)}, ce(opt(r_none)));
  t.add("cross_entropy_4d_weight_smoothing", {"cross_entropy_4d"}, {U({2, 3, 2, 2}), Idx({2, 2, 2}, 3), Const(P({3}))},
        ce(opt(r_mean, -100, 0.1)));

  t.add("embedding_repeated", {"embedding"}, {IdxV({2, 3}, {1, 3, 1, 0, 3, 3}), U({5, 4})}, ONE(embedding(x[0], x[1])));
  // The padding row is read by the forward but gets no gradient by definition (as in
  // PyTorch): subtract its contribution through a detached copy (which shares storage,
  // so perturbations still reach it) so that its true derivative is 0 as well.
  In pad_mask = Const(make_in({2, 3, 1}, Domain::values));
  pad_mask.values = {0, 1, 0, 0, 1, 1};
  t.add("embedding_padding_idx", {"embedding_padding"}, {IdxV({2, 3}, {1, 3, 1, 0, 3, 3}), U({5, 4}), pad_mask},
        ONE(sub(embedding(x[0], x[1], 3), mul(embedding(x[0], x[1].detach()), x[2]))));
  t.add("embedding_1d", {"embedding"}, {IdxV({4}, {4, 4, 2, 0}), U({5, 3})}, ONE(embedding(x[0], x[1])));

  // A fresh generator per call: every evaluation draws the same mask.
  t.add("dropout_train", {"dropout"}, {U({4, 5})}, one([](const Xs& x) {
          Generator gen(1234);
          return dropout(x[0], 0.3, true, &gen);
        }));
  t.add("dropout_eval", {"dropout"}, {U({4, 5})}, ONE(dropout(x[0], 0.3, false)));
}

void add_index(Table& t) {
  t.add("gather_dim0", {"gather"}, {U({3, 4}), Idx({2, 4}, 3)}, ONE(gather(x[0], 0, x[1])), kAll);
  t.add("gather_dim1_repeats", {"gather"}, {U({3, 4}), IdxV({3, 5}, {0, 0, 3, 1, 3, 2, 2, 2, 0, 1, 3, 3, 3, 3, 0})},
        ONE(gather(x[0], 1, x[1])), kAll);
  t.add("index_select_dim0", {"index_select"}, {U({3, 4}), IdxV({3}, {2, 0, 2})}, ONE(index_select(x[0], 0, x[1])),
        kAll);
  t.add("index_select_dim1", {"index_select"}, {U({3, 4}), IdxV({4}, {3, 3, 1, 0})}, ONE(index_select(x[0], 1, x[1])),
        kAll);
  t.add("scatter_add_dim0", {"scatter_add"}, {U({3, 4}), Idx({4, 4}, 3), U({4, 4})},
        ONE(scatter_add(x[0], 0, x[1], x[2])));
  t.add("scatter_add_dim1", {"scatter_add"}, {U({3, 4}), Idx({3, 6}, 4), U({3, 6})},
        ONE(scatter_add(x[0], 1, x[1], x[2])));
  t.add("scatter_add_src_only", {"scatter_add"}, {Const(U({3, 4})), Idx({2, 4}, 3), U({2, 4})},
        ONE(scatter_add(x[0], 0, x[1], x[2])));
}

void add_shape(Table& t) {
  t.add("cat_dim0", {"cat"}, {U({2, 3}), U({1, 3}), U({3, 3})}, ONE(cat({x[0], x[1], x[2]}, 0)));
  t.add("cat_dim1", {"cat"}, {U({2, 3}), U({2, 1}), U({2, 2})}, ONE(cat({x[0], x[1], x[2]}, 1)));
  t.add("cat_neg_dim", {"cat"}, {U({2, 3, 2}), U({2, 3, 3})}, ONE(cat({x[0], x[1]}, -1)));
  t.add("stack_dim0", {"stack"}, {U({2, 3}), U({2, 3}), U({2, 3})}, ONE(stack({x[0], x[1], x[2]}, 0)));
  t.add("stack_dim1", {"stack"}, {U({2, 3}), U({2, 3})}, ONE(stack({x[0], x[1]}, 1)));
  t.add("stack_last", {"stack"}, {U({2, 3}), U({2, 3})}, ONE(stack({x[0], x[1]}, -1)));
  t.add("split_size_all", {"split"}, {U({5, 3})}, MANY(split(x[0], 2, 0)));
  t.add("split_size_one_piece", {"split"}, {U({3, 5})}, ONE(split(x[0], 2, 1)[1]));
  t.add("split_sizes_all", {"split_sizes"}, {U({3, 5})}, MANY(split(x[0], std::vector<int64_t>{2, 1, 2}, 1)));
  t.add("chunk_all", {"chunk"}, {U({5, 3})}, MANY(chunk(x[0], 2, 0)));
  t.add("chunk_one_piece", {"chunk"}, {U({3, 7})}, ONE(chunk(x[0], 3, 1)[2]));
  t.add("chunk_combined", {"chunk"}, {U({4, 3})}, one([](const Xs& x) {
          auto p = chunk(x[0], 2, 0);
          return mul(p[0], p[1]);
        }));
}

void add_views(Table& t) {
  t.add("view_2x6", {"view"}, {U({3, 4})}, ONE(x[0].view({2, 6})), {C, S});
  t.add("view_infer", {"view"}, {U({2, 3, 4})}, ONE(x[0].view({-1, 4})), {C, S});
  t.add("view_split_last", {"view"}, {U({3, 4})}, ONE(x[0].view({3, 2, 2})), {C, S});
  t.add("reshape_viewable", {"reshape"}, {U({3, 4})}, ONE(x[0].reshape({4, 3})), {C, S});
  t.add("reshape_copy", {"reshape", "reshape_copy"}, {U({3, 4})}, ONE(x[0].reshape({12})), {T, E});
  t.add("permute", {"permute"}, {U({2, 3, 4})}, ONE(x[0].permute({2, 0, 1})), kAll);
  t.add("transpose", {"transpose"}, {U({2, 3, 4})}, ONE(x[0].transpose(0, 2)), kAll);
  t.add("transpose_neg", {"transpose"}, {U({2, 3, 4})}, ONE(x[0].transpose(-1, -2)));
  t.add("t", {"t"}, {U({3, 4})}, ONE(x[0].t()), kAll);
  t.add("narrow", {"narrow"}, {U({3, 5})}, ONE(x[0].narrow(1, 1, 3)), kAll);
  t.add("narrow_neg_start", {"narrow"}, {U({4, 3})}, ONE(x[0].narrow(0, -3, 2)));
  t.add("slice_step2", {"slice"}, {U({3, 5})}, ONE(x[0].slice(1, 0, 5, 2)), kAll);
  t.add("slice_step3_dim0", {"slice"}, {U({7, 2})}, ONE(x[0].slice(0, 1, 7, 3)));
  t.add("slice_negative", {"slice"}, {U({3, 5})}, ONE(x[0].slice(-1, -4, -1)));
  t.add("select_dim0", {"select"}, {U({3, 4})}, ONE(x[0].select(0, 1)), kAll);
  t.add("select_dim1_neg", {"select"}, {U({2, 3, 4})}, ONE(x[0].select(1, -1)), kAll);
  t.add("expand", {"expand"}, {U({3, 1})}, ONE(x[0].expand({2, 3, 4})));
  t.add("expand_minus1", {"expand"}, {U({1, 4})}, ONE(x[0].expand({3, -1})));
  t.add("expand_of_expanded", {"expand"}, {U({3, 4})}, ONE(x[0].expand({2, 3, 4})), kAll);
  t.add("squeeze_all", {"squeeze"}, {U({3, 1, 4, 1})}, ONE(x[0].squeeze()), kAll);
  t.add("squeeze_dim", {"squeeze_dim"}, {U({3, 1, 4})}, ONE(x[0].squeeze(1)), kAll);
  t.add("squeeze_dim_noop", {"squeeze_dim"}, {U({3, 4})}, ONE(x[0].squeeze(0)));
  t.add("unsqueeze_0", {"unsqueeze"}, {U({3, 4})}, ONE(x[0].unsqueeze(0)), kAll);
  t.add("unsqueeze_last", {"unsqueeze"}, {U({3, 4})}, ONE(x[0].unsqueeze(-1)), kAll);
  t.add("unsqueeze_mid", {"unsqueeze"}, {U({3, 4})}, ONE(x[0].unsqueeze(1)));
  t.add("flatten_all", {"flatten"}, {U({2, 3, 4})}, ONE(x[0].flatten()), kAll);
  t.add("flatten_1_2", {"flatten"}, {U({2, 3, 4})}, ONE(x[0].flatten(1, 2)), kAll);
  t.add("contiguous", {"contiguous"}, {U({3, 4})}, ONE(x[0].contiguous()), kAll);
  t.add("clone", {"clone"}, {U({3, 4})}, ONE(x[0].clone()), kAll);
  GradcheckOptions cast_tol;  // float32 rounding: a wider step and looser tolerances
  cast_tol.eps = 1e-3;
  cast_tol.atol = 1e-4;
  cast_tol.rtol = 1e-3;
  t.add("to_float32_roundtrip", {"to_dtype"}, {U({3, 4})}, ONE(x[0].to(DType::float32).to(DType::float64)), kAll,
        cast_tol);
}

void add_compositions(Table& t) {
  t.add("tensor_methods", {"tensor_methods"}, {P({3, 4}), U({4, 2})},
        ONE(x[0].abs().sqrt().log().exp().tanh().sigmoid().relu().pow(2.0).matmul(x[1]).sum({0}).mean() + x[0].sum() +
            x[0].mean({1}).sum({0}, true)));
  t.add("mlp_loss", {"mlp"}, {U({4, 3}), U({6, 3}), U({6}), U({4, 6}), U({4}), IdxV({4}, {0, 3, 2, 3})},
        ONE(cross_entropy(linear(gelu(linear(x[0], x[1], x[2])), x[3], x[4]), x[5])));
  t.add("attention", {"attention"}, {U({2, 3, 4}), U({2, 3, 4}), U({2, 3, 4})},
        ONE(matmul(softmax(mul(matmul(x[0], x[1].transpose(-2, -1)), 0.5), -1), x[2])));
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = [] {
    Table t;
    add_unary(t);
    add_binary(t);
    add_reduce(t);
    add_linalg(t);
    add_nn(t);
    add_index(t);
    add_shape(t);
    add_views(t);
    add_compositions(t);
    return t.cases;
  }();
  return all;
}

class Ops : public ::testing::TestWithParam<Case> {};

TEST_P(Ops, grad) {
  const Case& c = GetParam();
  Xs inputs;
  for (size_t i = 0; i < c.ins.size(); ++i) inputs.push_back(make_input(c.ins[i], c.seed + 7919 * i));
  GradcheckResult r = gradcheck_multi(c.fn, inputs, c.opts);
  if (r.status == GradcheckResult::Status::error) FAIL() << c.name << ": " << r.report;
  EXPECT_TRUE(r.ok()) << c.name << ": " << r.report;
  RecordProperty("worst_score", std::to_string(r.worst_score));
}

INSTANTIATE_TEST_SUITE_P(GradCheck, Ops, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Every differentiable op declared in engine/ops/*.h and every Tensor view method has
// a row, every one of them also under a non-contiguous layout, and the binary ops also
// with broadcasting. A new op must be added here and to the table.
TEST(GradCheckTable, CoversEveryOp) {
  const std::vector<std::string> ops = {
      // unary.h
      "neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu",
      "pow_scalar", "pow_tensor", "clamp_min", "clamp_max", "clamp_both",
      // binary.h
      "add", "add_alpha", "sub", "sub_alpha", "mul", "div", "maximum", "minimum", "add_scalar", "sub_scalar",
      "mul_scalar", "div_scalar", "where", "masked_fill", "sum_to", "operator_rsub", "operator_rdiv", "operators",
      // reduce.h
      "sum", "sum_keepdim", "mean", "mean_keepdim", "var_c0", "var_c1", "amax", "amin", "max_dim", "min_dim",
      "logsumexp", "norm_p1", "norm_p2", "norm_p3", "norm_inf",
      // linalg.h
      "matmul_1d_1d", "matmul_2d_1d", "matmul_1d_2d", "matmul_2d_2d", "matmul_3d_2d", "matmul_3d_3d", "matmul_4d_3d",
      "matmul_method", "linear_bias", "linear_nobias", "linear_3d",
      // nn.h
      "softmax", "log_softmax", "layer_norm", "layer_norm_nowb", "layer_norm_2d", "cross_entropy_mean",
      "cross_entropy_sum", "cross_entropy_none", "cross_entropy_ignore_index", "cross_entropy_label_smoothing",
      "cross_entropy_weight", "cross_entropy_4d", "embedding", "embedding_padding", "dropout",
      // index.h, shape.h
      "gather", "index_select", "scatter_add", "cat", "stack", "split", "split_sizes", "chunk",
      // Tensor views and conversions (tensor.h)
      "view", "reshape", "reshape_copy", "permute", "transpose", "t", "narrow", "slice", "select", "expand", "squeeze",
      "squeeze_dim", "unsqueeze", "flatten", "contiguous", "clone", "to_dtype", "tensor_methods",
      // end to end
      "mlp", "attention"};
  const std::vector<std::string> broadcast = {"add",     "add_alpha", "sub",        "sub_alpha", "mul",        "div",
                                              "maximum", "minimum",   "pow_tensor", "where",     "masked_fill"};
  std::set<std::string> covered;
  std::set<std::string> names;
  for (const Case& c : cases()) {
    covered.insert(c.covers.begin(), c.covers.end());
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate row name " << c.name;
  }
  for (const std::string& op : ops) {
    EXPECT_TRUE(covered.count(op)) << "no gradcheck row for op " << op;
    EXPECT_TRUE(covered.count(op + ":noncontig")) << "no non-contiguous row for " << op;
  }
  for (const std::string& op : broadcast)
    EXPECT_TRUE(covered.count(op + ":broadcast")) << "no broadcast row for " << op;
  std::cout << "gradcheck table: " << cases().size() << " cases covering " << ops.size() << " ops\n";
}

// ---- the harness itself ------------------------------------------------------

// y = x * x recorded with the backward `scale * x * g` (correct for scale 2); `shape_bug`
// returns a gradient of the wrong shape, `drift` adds a different offset on every call.
Tensor square_op(const Tensor& x, double scale, bool shape_bug = false, bool drift = false) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mul(x, x);
  }
  static int calls = 0;
  autograd::record("SquareForTest", {x}, out, {x},
                   [=](const Tensor& g, const autograd::BackwardContext& ctx) -> std::vector<Tensor> {
                     Tensor d = mul(mul(ctx.saved[0], g), scale);
                     if (drift) d = add(d, 1e-3 * ++calls);
                     if (shape_bug) d = d.sum();
                     return {d};
                   });
  return out;
}

// A forward that ignores strides (reads the view's memory densely), identity backward.
Tensor stride_blind_copy(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), {.dtype = x.dtype()});
  std::memcpy(out.raw_data(), x.raw_data(), x.nbytes());
  autograd::record("StrideBlindForTest", {x}, out, {},
                   [](const Tensor& g, const autograd::BackwardContext&) { return std::vector<Tensor>{g}; });
  return out;
}

TEST(GradcheckHarness, PassesACorrectGradientOnEveryLayout) {
  for (Variant v : {Variant::contiguous, Variant::transposed, Variant::sliced, Variant::expanded}) {
    const bool contiguous = v == Variant::contiguous, expanded = v == Variant::expanded;
    Tensor x = make_variant(make_input(U({3, 4}), 11), v);
    EXPECT_EQ(x.is_contiguous(), contiguous) << variant_name(v);
    EXPECT_EQ(x.is_leaf(), contiguous) << variant_name(v) << ": views must require grad through their leaf";
    if (expanded) {
      EXPECT_EQ(x.strides()[0], 0);
    }
    std::vector<double> before = x.detach().to_vector<double>();
    const uint64_t version = x.version();
    GradcheckResult r = gradcheck([](const Xs& in) { return square_op(in[0], 2.0); }, {x});
    EXPECT_TRUE(r.ok()) << variant_name(v) << ": " << r.report;
    // An expanded [3, 4] view of a [1, 4] leaf addresses 4 storage elements.
    EXPECT_EQ(r.elements_checked, expanded ? 4 : 12) << variant_name(v);
    EXPECT_LT(r.worst_score, 1.0);
    std::vector<double> after = x.detach().to_vector<double>();
    EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(double)), 0)
        << "perturbations were not restored exactly (" << variant_name(v) << ")";
    EXPECT_EQ(x.version(), version) << "perturbations bumped the version counter";
  }
}

TEST(GradcheckHarness, CatchesAWrongGradientAndNamesTheElement) {
  Tensor x = make_variant(make_input(U({3, 4}), 12), Variant::transposed);
  GradcheckOptions opts;
  opts.input_labels = {"x"};
  GradcheckResult r = gradcheck([](const Xs& in) { return square_op(in[0], 2.01); }, {x}, opts);
  EXPECT_EQ(r.status, GradcheckResult::Status::failed);
  EXPECT_EQ(r.mismatches, 12);
  EXPECT_EQ(r.worst_input, 0);
  ASSERT_EQ(r.worst_index.size(), 2u);
  EXPECT_NEAR(r.worst_analytic / r.worst_numeric, 1.005, 1e-6);
  EXPECT_NE(r.report.find("input 0 'x' (shape [3, 4]"), std::string::npos) << r.report;
}

TEST(GradcheckHarness, CatchesWrongShapesNondeterminismAndMissingGraphs) {
  Tensor x = make_variant(make_input(U({2, 3}), 13), Variant::contiguous);
  GradcheckResult shape = gradcheck([](const Xs& in) { return square_op(in[0], 2.0, true); }, {x});
  EXPECT_FALSE(shape.ok());
  EXPECT_NE(shape.report.find("has shape []"), std::string::npos) << shape.report;

  GradcheckResult drift = gradcheck([](const Xs& in) { return square_op(in[0], 2.0, false, true); }, {x});
  EXPECT_FALSE(drift.ok());
  EXPECT_NE(drift.report.find("nondeterministic backward"), std::string::npos) << drift.report;

  GradcheckResult detached = gradcheck([](const Xs& in) { return mul(in[0].detach(), 2.0); }, {x});
  EXPECT_FALSE(detached.ok());
  EXPECT_NE(detached.report.find("does not require grad"), std::string::npos) << detached.report;

  Tensor xt = make_variant(make_input(U({3, 4}), 13), Variant::transposed);
  GradcheckResult blind = gradcheck([](const Xs& in) { return stride_blind_copy(in[0]); }, {xt});
  EXPECT_FALSE(blind.ok());
  EXPECT_NE(blind.report.find("mishandles strides"), std::string::npos) << blind.report;
  EXPECT_TRUE(gradcheck([](const Xs& in) { return stride_blind_copy(in[0]); }, {x}).ok());

  GradcheckResult thrown = gradcheck([](const Xs& in) -> Tensor { return in[0].view({5}); }, {x});
  EXPECT_EQ(thrown.status, GradcheckResult::Status::error);
  EXPECT_NE(thrown.error.find("view"), std::string::npos) << thrown.error;
}

TEST(GradcheckHarness, PassesNonGradInputsThroughAndHandlesSeveralOutputs) {
  Tensor x = make_variant(make_input(U({4, 3}), 14), Variant::sliced);
  Tensor idx = make_input(IdxV({2}, {3, 1}), 0);
  GradcheckResult r = gradcheck_multi(
      [](const Xs& in) {
        return Xs{square_op(in[0], 2.0), mul(in[0], in[1].to(DType::float64).sum())};
      },
      {x, idx});
  EXPECT_TRUE(r.ok()) << r.report;
  EXPECT_EQ(r.elements_checked, 12);
}

TEST(TestUtil, HelpersReportThroughGoogleTest) {
  Tensor t = tensor<double>({1.0, 2.0, 3.0}, {3});
  EXPECT_TRUE(all_close(t, {1.0, 2.0, 3.0 + 1e-9}));
  EXPECT_FALSE(all_close(t, {1.0, 2.5, 3.0}));
  EXPECT_FALSE(all_close(t, {1.0, 2.0}));
  expect_close(t, {1.0, 2.0, 3.0});
  EXPECT_TRUE(throws_with([&] { (void)t.view({2}); }, {"view", "[2]"}));
  EXPECT_FALSE(throws_with([&] { (void)t.view({2}); }, {"no such text"}));
  EXPECT_FALSE(throws_with([] {}, {}));
  EXPECT_FALSE(throws_with([] { throw std::runtime_error("plain"); }, {}));
  expect_throws_with([&] { (void)t.view({4}); }, {"view"});
  Tensor a = random_tensor({2, 3}, DType::float64, 5), b = random_tensor({2, 3}, DType::float64, 5);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  EXPECT_NE(a.to_vector<double>(), random_tensor({2, 3}, DType::float64, 6).to_vector<double>());
  std::vector<int64_t> ints = random_tensor({50}, DType::int64, 1).to_vector<int64_t>();
  EXPECT_TRUE(std::all_of(ints.begin(), ints.end(), [](int64_t v) { return v >= 0 && v < 10; }));
  EXPECT_EQ(random_tensor({4}, DType::bool_, 1).dtype(), DType::bool_);
}

}  // namespace
}  // namespace zae::test
