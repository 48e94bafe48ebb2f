// Tests for the reductions (engine/ops/reduce.h over kernels/cpu/reduce.h).
//
// Forward values are compared with a plain double-loop reference that gathers, for
// every output element, the input values it reduces (in row-major order) and folds
// them. Checked: every op over all dims, one dim (first / middle / last / negative),
// several non-adjacent dims, keepdim on and off, contiguous / transposed / sliced
// inputs, float32 / float64 / bfloat16 / float16; integer sums (int64 results); sizes that
// stress the kernel split (1, 7, 1023, 2^20 + 3, tall columns, chunked rows); ties
// (first index), NaN propagation, empty reductions, bad-dim errors; and backward
// formulas (values for sum / mean / max / amax ties, float64 finite differences for
// var, norm and logsumexp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::expect_throws_with;

using namespace zae;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> values_of(const Tensor& t) { return t.to(DType::float64).to_vector<double>(); }

std::vector<double> random_values(int64_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}

/// ---- the double-loop reference -------------------------------------------------

struct Buckets {
  Shape out_shape;
  std::vector<std::vector<double>> values;  // per output element, in row-major input order
};

Buckets bucket(const std::vector<double>& x, const Shape& shape, const Shape& dims_in, bool keepdim) {
  const int64_t n = static_cast<int64_t>(shape.size());
  std::vector<bool> red(static_cast<size_t>(n), dims_in.empty());
  for (int64_t d : dims_in) red[static_cast<size_t>(d < 0 ? d + n : d)] = true;
  Buckets b;
  Shape kept;
  for (int64_t i = 0; i < n; ++i) {
    if (!red[i]) kept.push_back(shape[i]);
    if (keepdim || !red[i]) b.out_shape.push_back(red[i] ? 1 : shape[i]);
  }
  b.values.resize(static_cast<size_t>(shape_numel(kept)));
  for (int64_t lin = 0; lin < static_cast<int64_t>(x.size()); ++lin) {
    int64_t rem = lin, out = 0, mul = 1;
    for (int64_t d = n - 1; d >= 0; --d) {
      int64_t idx = rem % shape[d];
      rem /= shape[d];
      if (!red[d]) {
        out += idx * mul;
        mul *= shape[d];
      }
    }
    b.values[static_cast<size_t>(out)].push_back(x[static_cast<size_t>(lin)]);
  }
  return b;
}

double ref_sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double ref_mean(const std::vector<double>& v) { return ref_sum(v) / static_cast<double>(v.size()); }
double ref_var(const std::vector<double>& v, int64_t correction) {
  double m = ref_mean(v), s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return s / std::max(0.0, static_cast<double>(v.size()) - static_cast<double>(correction));
}
/// Index of the first extremum; NaN is the extremum.
size_t ref_arg(const std::vector<double>& v, bool is_max) {
  size_t best = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) return i;
    if (is_max ? v[i] > v[best] : v[i] < v[best]) best = i;
  }
  return best;
}
double ref_lse(const std::vector<double>& v) {
  double m = *std::max_element(v.begin(), v.end()), s = 0.0;
  for (double x : v) s += std::exp(x - m);
  return std::log(s) + m;
}
double ref_norm(const std::vector<double>& v, double p) {
  double s = 0.0;
  if (std::isinf(p)) {
    for (double x : v) s = std::max(s, std::abs(x));
    return s;
  }
  for (double x : v) s += std::pow(std::abs(x), p);
  return std::pow(s, 1.0 / p);
}
double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

/// One reduction under test: the op, its reference, and the magnitude its error is measured against.
struct OpCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Shape&, bool)> run;
  std::function<double(const std::vector<double>&)> ref;
  std::function<double(const std::vector<double>&)> scale;
};

std::vector<OpCase> op_cases() {
  auto sum_abs = [](const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += std::abs(x);
    return s;
  };
  auto ma = [](const std::vector<double>& v) { return max_abs(v); };
  auto sq = [](const std::vector<double>& v) { return max_abs(v) * max_abs(v); };
  return {
      {"sum", [](const Tensor& x, const Shape& d, bool k) { return sum(x, d, k); }, ref_sum, sum_abs},
      {"mean", [](const Tensor& x, const Shape& d, bool k) { return mean(x, d, k); }, ref_mean, ma},
      {"var", [](const Tensor& x, const Shape& d, bool k) { return var(x, d, 1, k); },
       [](const std::vector<double>& v) { return ref_var(v, 1); }, sq},
      {"var0", [](const Tensor& x, const Shape& d, bool k) { return var(x, d, 0, k); },
       [](const std::vector<double>& v) { return ref_var(v, 0); }, sq},
      {"amax", [](const Tensor& x, const Shape& d, bool k) { return amax(x, d, k); },
       [](const std::vector<double>& v) { return v[ref_arg(v, true)]; }, ma},
      {"amin", [](const Tensor& x, const Shape& d, bool k) { return amin(x, d, k); },
       [](const std::vector<double>& v) { return v[ref_arg(v, false)]; }, ma},
      {"logsumexp", [](const Tensor& x, const Shape& d, bool k) { return logsumexp(x, d, k); }, ref_lse,
       [](const std::vector<double>& v) { return ref_lse(v) + max_abs(v); }},
      {"norm2", [](const Tensor& x, const Shape& d, bool k) { return norm(x, 2.0, d, k); },
       [](const std::vector<double>& v) { return ref_norm(v, 2.0); }, sum_abs},
      {"norm1", [](const Tensor& x, const Shape& d, bool k) { return norm(x, 1.0, d, k); },
       [](const std::vector<double>& v) { return ref_norm(v, 1.0); }, sum_abs},
      {"norm3", [](const Tensor& x, const Shape& d, bool k) { return norm(x, 3.0, d, k); },
       [](const std::vector<double>& v) { return ref_norm(v, 3.0); }, sum_abs},
      {"norm0.5", [](const Tensor& x, const Shape& d, bool k) { return norm(x, 0.5, d, k); },
       [](const std::vector<double>& v) { return ref_norm(v, 0.5); },
       [](const std::vector<double>& v) { return ref_norm(v, 0.5); }},
      {"norm_inf", [](const Tensor& x, const Shape& d, bool k) { return norm(x, kInf, d, k); },
       [](const std::vector<double>& v) { return ref_norm(v, kInf); }, ma},
  };
}

/// Inputs: contiguous; last two dims transposed; every other element of the last dim;
/// a dense permutation whose memory order puts the last dim outermost.
enum class Layout { contiguous, transposed, sliced, permuted };

/// A tensor of `shape` and dtype holding random values, laid out as asked.
Tensor make_input(const Shape& shape, DType dt, Layout layout, uint32_t seed, bool round_values = false) {
  Shape base = shape;
  if (layout == Layout::transposed && shape.size() >= 2) std::swap(base[base.size() - 1], base[base.size() - 2]);
  if (layout == Layout::sliced && !shape.empty()) base.back() *= 2;
  if (layout == Layout::permuted && !shape.empty()) std::rotate(base.rbegin(), base.rbegin() + 1, base.rend());
  std::vector<double> v = random_values(shape_numel(base), seed);
  if (round_values)
    for (double& x : v) x = std::round(x);
  Tensor t = tensor(v, base).to(dt);
  if (layout == Layout::transposed && shape.size() >= 2) t = t.transpose(-1, -2);
  if (layout == Layout::sliced && !shape.empty()) t = t.slice(-1, 0, base.back(), 2);
  if (layout == Layout::permuted && !shape.empty()) {
    Shape perm(shape.size());
    std::iota(perm.begin(), perm.end(), int64_t{1});
    perm.back() = 0;
    t = t.permute(perm);
  }
  EXPECT_EQ(t.shape(), shape);
  const size_t n = shape.size();
  const bool moved = layout == Layout::sliced       ? shape_numel(shape) > 1
                     : layout == Layout::transposed ? n >= 2 && shape[n - 1] > 1 && shape[n - 2] > 1
                                                    : false;
  if (moved) {
    EXPECT_FALSE(t.is_contiguous());
  }
  return t;
}

double tolerance(DType dt) {
  switch (dt) {
    case DType::float64:
      return 1e-12;
    case DType::float32:
      return 2e-6;
    default:
      return 1.6e-2;  // bfloat16 (8 mantissa bits) and float16 (11) outputs
  }
}

struct DimCase {
  Shape shape;
  Shape dims;
};

std::vector<DimCase> dim_cases() {
  return {
      {{3, 4, 5}, {}},
      {{3, 4, 5}, {0}},
      {{3, 4, 5}, {1}},
      {{3, 4, 5}, {2}},
      {{3, 4, 5}, {-1}},
      {{3, 4, 5}, {0, 2}},
      {{3, 4, 5}, {2, 0}},
      {{3, 4, 5}, {0, 1, 2}},
      {{3, 4, 5}, {1, 2}},
      {{2, 3, 4, 5}, {1, 3}},
      {{2, 3, 4, 5}, {0, 2}},
      {{2, 1, 6, 1}, {1, 2}},
      {{7}, {0}},
      {{1}, {}},
      {{6, 1}, {0}},
  };
}

// ---- forward values ------------------------------------------------------------------

TEST(Reduce, ForwardMatchesReferenceOverDimsLayoutsAndDtypes) {
  uint32_t seed = 1;
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    for (const DimCase& dc : dim_cases()) {
      for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::sliced, Layout::permuted}) {
        for (bool keepdim : {false, true}) {
          Tensor x = make_input(dc.shape, dt, layout, ++seed);
          std::vector<double> xv = values_of(x);
          Buckets b = bucket(xv, dc.shape, dc.dims, keepdim);
          for (const OpCase& op : op_cases()) {
            SCOPED_TRACE(op.name + " dtype " + std::string(dtype_name(dt)) + " shape " + shape_str(dc.shape) +
                         " dims " + shape_str(dc.dims) + " layout " + std::to_string(static_cast<int>(layout)) +
                         " keepdim " + std::to_string(keepdim));
            Tensor out = op.run(x, dc.dims, keepdim);
            ASSERT_EQ(out.shape(), b.out_shape);
            ASSERT_EQ(out.dtype(), dt);
            std::vector<double> got = values_of(out);
            for (size_t i = 0; i < got.size(); ++i) {
              double want = op.ref(b.values[i]);
              if (std::isnan(want)) {
                EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
                continue;
              }
              EXPECT_NEAR(got[i], want, tolerance(dt) * (1.0 + op.scale(b.values[i]))) << "element " << i;
            }
          }
        }
      }
    }
  }
}

TEST(Reduce, MaxMinAlongDimGiveValuesAndFirstIndices) {
  uint32_t seed = 100;
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::int32, DType::int64}) {
    for (Shape shape : {Shape{3, 4, 5}, Shape{2, 7}, Shape{9}}) {
      for (int64_t dim = -1; dim < static_cast<int64_t>(shape.size()); ++dim) {
        for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::sliced, Layout::permuted}) {
          for (bool keepdim : {false, true}) {
            // Values rounded to integers so that ties are common.
            Tensor xt = make_input(shape, dt, layout, ++seed, /*round_values=*/true);
            std::vector<double> xv = values_of(xt);
            SCOPED_TRACE(std::string(dtype_name(dt)) + " shape " + shape_str(shape) + " dim " + std::to_string(dim) +
                         " layout " + std::to_string(static_cast<int>(layout)));
            Buckets b = bucket(xv, shape, {dim}, keepdim);
            for (bool is_max : {true, false}) {
              auto [vals, idx] = is_max ? max(xt, dim, keepdim) : min(xt, dim, keepdim);
              Tensor am = is_max ? argmax(xt, dim, keepdim) : argmin(xt, dim, keepdim);
              ASSERT_EQ(vals.shape(), b.out_shape);
              ASSERT_EQ(idx.shape(), b.out_shape);
              ASSERT_EQ(am.shape(), b.out_shape);
              EXPECT_EQ(vals.dtype(), dt);
              EXPECT_EQ(idx.dtype(), DType::int64);
              EXPECT_EQ(am.dtype(), DType::int64);
              std::vector<double> gv = values_of(vals);
              std::vector<int64_t> gi = idx.to_vector<int64_t>(), ga = am.to_vector<int64_t>();
              for (size_t i = 0; i < gv.size(); ++i) {
                size_t want = ref_arg(b.values[i], is_max);
                EXPECT_EQ(gi[i], static_cast<int64_t>(want)) << "element " << i << " max " << is_max;
                EXPECT_EQ(ga[i], static_cast<int64_t>(want)) << "element " << i << " max " << is_max;
                EXPECT_EQ(gv[i], b.values[i][want]) << "element " << i << " max " << is_max;
              }
            }
          }
        }
      }
    }
  }
}

TEST(Reduce, ArgmaxOverFlattenedUsesRowMajorOrder) {
  // Transposed input: the flattened order is the logical one, not the memory order.
  Tensor base = tensor({1, 9, 3, 9, 2, 0}, {2, 3});  // [[1, 9, 3], [9, 2, 0]]
  Tensor xt = base.t();                              // [[1, 9], [9, 2], [3, 0]]
  EXPECT_EQ(argmax(xt).item<int64_t>(), 1);
  EXPECT_EQ(argmin(xt).item<int64_t>(), 5);
  EXPECT_EQ(argmax(base).item<int64_t>(), 1);
  EXPECT_EQ(argmax(xt).dim(), 0);
  Tensor kd = argmax(xt, std::nullopt, true);
  EXPECT_EQ(kd.shape(), (Shape{1, 1}));
  EXPECT_EQ(kd.item<int64_t>(), 1);
  // 0-dim input.
  Tensor s = scalar_tensor(4.0);
  EXPECT_EQ(argmax(s).item<int64_t>(), 0);
  auto [v, i] = max(s, 0);
  EXPECT_EQ(v.dim(), 0);
  EXPECT_EQ(v.item(), 4.0);
  EXPECT_EQ(i.item<int64_t>(), 0);
  EXPECT_EQ(sum(s).item(), 4.0);
  EXPECT_EQ(sum(s, {0}).dim(), 0);
}

TEST(Reduce, IntegerSumsGiveInt64) {
  std::vector<int32_t> big = {2000000000, 2000000000, -7, 2000000000};
  Tensor x = tensor(big, {2, 2});
  Tensor s = sum(x);
  EXPECT_EQ(s.dtype(), DType::int64);
  EXPECT_EQ(s.item<int64_t>(), 5999999993LL);
  std::vector<int64_t> rows = sum(x, {1}).to_vector<int64_t>();
  EXPECT_EQ(rows, (std::vector<int64_t>{4000000000LL, 1999999993LL}));
  std::vector<int64_t> cols = sum(x.t(), {1}, true).to_vector<int64_t>();  // non-contiguous
  EXPECT_EQ(cols, (std::vector<int64_t>{1999999993LL, 4000000000LL}));
  std::vector<uint8_t> bytes(300, 200);
  Tensor u = tensor(bytes, {3, 100});
  EXPECT_EQ(sum(u).item<int64_t>(), 60000);
  EXPECT_EQ(sum(u, {0}).to_vector<int64_t>(), std::vector<int64_t>(100, 600));
  Tensor b = gt(tensor({1, -1, 2, 0, 3}), 0.5);
  ASSERT_EQ(b.dtype(), DType::bool_);
  Tensor bs = sum(b);
  EXPECT_EQ(bs.dtype(), DType::int64);
  EXPECT_EQ(bs.item<int64_t>(), 3);
  // Integer extrema keep the dtype.
  Tensor m = amax(tensor(std::vector<int64_t>{3, -9, 12, 12}, {2, 2}), {0});
  EXPECT_EQ(m.dtype(), DType::int64);
  EXPECT_EQ(m.to_vector<int64_t>(), (std::vector<int64_t>{12, 12}));
}

// ---- sizes that stress the kernel split ------------------------------------------------

TEST(Reduce, Float32SumsAreAccurateAtEverySize) {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1023}, int64_t{1 << 16}, int64_t{(1 << 20) + 3}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    // Positive values: the worst case for a naive float accumulator.
    Tensor x = tensor(random_values(n, 7, 0.0, 1.0), {n}).to(DType::float32);
    std::vector<double> xv = values_of(x);
    double want = ref_sum(xv);
    EXPECT_NEAR(sum(x).item(), want, 1e-5 * want);
    EXPECT_NEAR(mean(x).item(), want / static_cast<double>(n), 1e-5 * want / static_cast<double>(n));
    // var of values with a large common offset (two-pass keeps it accurate).
    if (n > 1) {
      Tensor y = tensor(random_values(n, 8, 1000.0, 1001.0), {n}).to(DType::float32);
      std::vector<double> yv = values_of(y);
      EXPECT_NEAR(var(y).item(), ref_var(yv, 1), 1e-4 * ref_var(yv, 1));
    }
  }
}

TEST(Reduce, TallColumnsAndLongRowsSplitIntoChunks) {
  // (K, inner) with K far above one task: sums over dim 0 fold several chunks.
  const int64_t k = (1 << 18) + 3;
  for (int64_t inner : {int64_t{3}, int64_t{300}}) {
    SCOPED_TRACE("inner = " + std::to_string(inner));
    const int64_t kk = inner == 3 ? k : 2001;
    Tensor x = tensor(random_values(kk * inner, 9, 0.0, 1.0), {kk, inner}).to(DType::float32);
    Buckets b = bucket(values_of(x), {kk, inner}, {0}, false);
    std::vector<double> s = values_of(sum(x, {0})), nm = values_of(norm(x, 2.0, {0}));
    for (int64_t j = 0; j < inner; ++j) {
      double want = ref_sum(b.values[j]);
      EXPECT_NEAR(s[j], want, 1e-5 * want) << "column " << j;
      EXPECT_NEAR(nm[j], ref_norm(b.values[j], 2.0), 1e-5 * ref_norm(b.values[j], 2.0)) << "column " << j;
    }
  }
  // A long row: ties and NaN across chunk boundaries keep the first index.
  const int64_t n = 100000;
  std::vector<double> v(static_cast<size_t>(n), 0.0);
  v[40000] = 5.0;
  v[90000] = 5.0;
  v[20000] = -3.0;
  v[99999] = -3.0;
  Tensor x = tensor(v, {1, n});
  EXPECT_EQ(argmax(x).item<int64_t>(), 40000);
  EXPECT_EQ(argmin(x).item<int64_t>(), 20000);
  EXPECT_EQ(amax(x).item(), 5.0);
  // The same as tall columns (inner > 1).
  Tensor xc = tensor(v, {n, 1}).expand({n, 4}).contiguous();
  EXPECT_EQ(max(xc, 0).second.to_vector<int64_t>(), std::vector<int64_t>(4, 40000));
  EXPECT_EQ(min(xc, 0).second.to_vector<int64_t>(), std::vector<int64_t>(4, 20000));
  v[70000] = kNaN;
  v[80000] = kNaN;
  Tensor xn = tensor(v, {n});
  EXPECT_EQ(argmax(xn).item<int64_t>(), 70000);
  EXPECT_EQ(argmin(xn).item<int64_t>(), 70000);
  EXPECT_TRUE(std::isnan(amax(xn).item()));
  Tensor xnc = tensor(v, {n, 1}).expand({n, 2}).contiguous();
  EXPECT_EQ(argmax(xnc, 0).to_vector<int64_t>(), std::vector<int64_t>(2, 70000));
}

// ---- NaN, empty, errors -------------------------------------------------------------------

TEST(Reduce, NaNPropagates) {
  Tensor x = tensor({1.0, kNaN, 3.0, kNaN, 2.0, 5.0}, {2, 3});  // [[1, nan, 3], [nan, 2, 5]]
  auto [v, i] = max(x, 1);
  std::vector<double> vv = values_of(v);
  EXPECT_TRUE(std::isnan(vv[0]) && std::isnan(vv[1]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(min(x, 1).second.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(argmax(x).item<int64_t>(), 1);
  std::vector<double> cols = values_of(amin(x, {0}));
  EXPECT_TRUE(std::isnan(cols[0]) && std::isnan(cols[1]));
  EXPECT_EQ(cols[2], 3.0);
  EXPECT_TRUE(std::isnan(sum(x).item()));
  EXPECT_TRUE(std::isnan(logsumexp(x, {1}).to_vector<double>()[0]));
  EXPECT_TRUE(std::isnan(norm(x, kInf).item()));
  // Infinite maxima in logsumexp.
  Tensor inf = tensor({-kInf, -kInf, kInf, 1.0}, {2, 2});
  std::vector<double> l = values_of(logsumexp(inf, {1}));
  EXPECT_EQ(l[0], -kInf);
  EXPECT_EQ(l[1], kInf);
}

TEST(Reduce, EmptyReductions) {
  Tensor e = zeros({2, 0, 3});
  EXPECT_EQ(sum(e).item(), 0.0);
  EXPECT_EQ(values_of(sum(e, {1})), std::vector<double>(6, 0.0));
  EXPECT_EQ(sum(e, {1}, true).shape(), (Shape{2, 1, 3}));
  for (double m : values_of(mean(e, {1}))) EXPECT_TRUE(std::isnan(m));
  for (double m : values_of(var(e, {1}))) EXPECT_TRUE(std::isnan(m));
  for (double m : values_of(logsumexp(e, {1}))) EXPECT_EQ(m, -kInf);
  EXPECT_EQ(norm(e).item(), 0.0);
  EXPECT_EQ(sum(zeros({0}, {.dtype = DType::int32})).item<int64_t>(), 0);
  // Empty output, non-empty reduced dim: fine for every op.
  EXPECT_EQ(amax(e, {2}).shape(), (Shape{2, 0}));
  EXPECT_EQ(max(e, 2).second.shape(), (Shape{2, 0}));
  EXPECT_EQ(argmin(e, 0).shape(), (Shape{0, 3}));
  // No identity: a clear error naming the op, the dims and the shape.
  expect_throws_with([&] { amax(e, {1}); }, {"amax", "[1]", "[2, 0, 3]"});
  expect_throws_with([&] { amin(e); }, {"amin", "[2, 0, 3]"});
  expect_throws_with([&] { max(e, 1); }, {"max", "[1]", "[2, 0, 3]"});
  expect_throws_with([&] { min(e, -2); }, {"min", "[2, 0, 3]"});
  expect_throws_with([&] { argmax(e); }, {"argmax", "[2, 0, 3]"});
  expect_throws_with([&] { argmin(e, 1); }, {"argmin", "[2, 0, 3]"});
  expect_throws_with([&] { norm(e, kInf); }, {"norm", "[2, 0, 3]"});
}

TEST(Reduce, BadArgumentsAreClearErrors) {
  Tensor x = zeros({2, 3});
  expect_throws_with([&] { sum(x, {2}); }, {"sum", "dim 2", "[2, 3]"});
  expect_throws_with([&] { mean(x, {-3}); }, {"mean", "dim -3", "[2, 3]"});
  expect_throws_with([&] { max(x, 5); }, {"max", "dim 5", "[2, 3]"});
  expect_throws_with([&] { argmax(x, -4); }, {"argmax", "dim -4", "[2, 3]"});
  expect_throws_with([&] { var(x, {1, -1}); }, {"var", "dim 1", "more than once", "[1, -1]", "[2, 3]"});
  expect_throws_with([&] { amax(x, {0, 0}); }, {"amax", "[0, 0]"});
  expect_throws_with([&] { mean(zeros({2}, {.dtype = DType::int64})); }, {"mean", "int64"});
  expect_throws_with([&] { logsumexp(zeros({2}, {.dtype = DType::int32}), {0}); }, {"logsumexp", "int32"});
  expect_throws_with([&] { norm(x, 0.0); }, {"norm", "p", "0"});
  expect_throws_with([&] { norm(x, -kInf); }, {"norm", "-inf"});
  expect_throws_with([&] { sum(Tensor()); }, {"sum", "undefined"});
}

// ---- backward ---------------------------------------------------------------------------

/// Central differences of L(x) = sum(f(x) * w) against autograd, in float64.
void check_gradient(const std::function<Tensor(const Tensor&)>& f, const Shape& shape, const std::vector<double>& xv,
                    const std::string& what, double tol = 1e-6) {
  SCOPED_TRACE(what);
  Tensor x = tensor(xv, shape).requires_grad_();
  Tensor out = f(x);
  std::vector<double> w = random_values(out.numel(), 77, 0.5, 1.5);
  Tensor wt = tensor(w, {out.numel()}).reshape(out.shape());
  out.backward(wt);
  ASSERT_TRUE(x.grad().defined());
  ASSERT_EQ(x.grad().shape(), shape);
  std::vector<double> g = values_of(x.grad());
  auto loss = [&](const std::vector<double>& v) {
    NoGradGuard no_grad;
    std::vector<double> o = values_of(f(tensor(v, shape)));
    double s = 0.0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * w[i];
    return s;
  };
  const double h = 1e-6;
  for (size_t i = 0; i < xv.size(); ++i) {
    std::vector<double> p = xv, m = xv;
    p[i] += h;
    m[i] -= h;
    double fd = (loss(p) - loss(m)) / (2 * h);
    EXPECT_NEAR(g[i], fd, tol * (1.0 + std::abs(fd))) << "element " << i;
  }
}

TEST(ReduceBackward, SumAndMeanBroadcastTheGradient) {
  Tensor x = tensor(random_values(24, 3), {2, 3, 4}).requires_grad_();
  Tensor g = tensor(random_values(8, 4), {2, 4});
  sum(x, {1}).backward(g);
  std::vector<double> gv = values_of(g), got = values_of(x.grad());
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c) EXPECT_DOUBLE_EQ(got[(a * 3 + b) * 4 + c], gv[a * 4 + c]);
  Tensor y = tensor(random_values(24, 5), {2, 3, 4}).requires_grad_();
  mean(y.transpose(0, 2), {0, 2}, true).backward(tensor({1.0, 2.0, 3.0}, {1, 3, 1}));
  got = values_of(y.grad());
  for (int64_t i = 0; i < 24; ++i) EXPECT_DOUBLE_EQ(got[i], static_cast<double>((i / 4) % 3 + 1) / 8.0) << i;
}

TEST(ReduceBackward, ExtremaSplitTiesOrPickTheFirstIndex) {
  Tensor x = tensor({1.0, 3.0, 3.0, 2.0, 7.0, 7.0, 7.0, 0.0}, {2, 4}).requires_grad_();
  amax(x, {1}).backward(tensor({6.0, 3.0}));
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{0, 3, 3, 0, 1, 1, 1, 0}));
  Tensor y = tensor({1.0, 3.0, 3.0, 2.0, 7.0, 7.0, 7.0, 0.0}, {2, 4}).requires_grad_();
  max(y, 1).first.backward(tensor({6.0, 3.0}));
  EXPECT_EQ(values_of(y.grad()), (std::vector<double>{0, 6, 0, 0, 3, 0, 0, 0}));
  Tensor z = tensor({4.0, 1.0, 1.0, 2.0}, {2, 2}).requires_grad_();
  amin(z).backward(scalar_tensor(4.0, {.dtype = DType::float64}));
  EXPECT_EQ(values_of(z.grad()), (std::vector<double>{0, 2, 2, 0}));
  Tensor u = tensor({4.0, 1.0, 1.0, 2.0}, {2, 2}).requires_grad_();
  min(u.t(), 1, true).first.backward(tensor({5.0, 7.0}, {2, 1}));  // u.t() = [[4, 1], [1, 2]]
  EXPECT_EQ(values_of(u.grad()), (std::vector<double>{0, 7, 5, 0}));
  // inf-norm ties share too, with the sign of x.
  Tensor n = tensor({-3.0, 1.0, 3.0, 0.5}).requires_grad_();
  norm(n, kInf).backward();
  EXPECT_EQ(values_of(n.grad()), (std::vector<double>{-0.5, 0, 0.5, 0}));
  // Gradients away from ties match finite differences.
  std::vector<double> v = random_values(12, 21);
  check_gradient([](const Tensor& t) { return amax(t, {0, 2}); }, {2, 3, 2}, v, "amax");
  check_gradient([](const Tensor& t) { return min(t, 1).first; }, {2, 3, 2}, v, "min");
}

TEST(ReduceBackward, FiniteDifferences) {
  const Shape shape{3, 4, 2};
  std::vector<double> v = random_values(24, 31);
  check_gradient([](const Tensor& t) { return var(t, {1}); }, shape, v, "var dim 1");
  check_gradient([](const Tensor& t) { return var(t.transpose(0, 1), {0, 2}, 0, true); }, shape, v, "var corr 0");
  check_gradient([](const Tensor& t) { return var(t); }, shape, v, "var all");
  check_gradient([](const Tensor& t) { return logsumexp(t, {2}); }, shape, v, "logsumexp dim 2");
  check_gradient([](const Tensor& t) { return logsumexp(t, {0, 2}, true); }, shape, v, "logsumexp dims 0,2");
  check_gradient([](const Tensor& t) { return norm(t); }, shape, v, "norm2 all");
  check_gradient([](const Tensor& t) { return norm(t, 2.0, {1}); }, shape, v, "norm2 dim 1");
  check_gradient([](const Tensor& t) { return norm(t, 1.0, {0}); }, shape, v, "norm1");
  check_gradient([](const Tensor& t) { return norm(t, 3.0, {2, 0}); }, shape, v, "norm3");
  check_gradient([](const Tensor& t) { return norm(t, 1.5, {1}, true); }, shape, v, "norm1.5");
  check_gradient([](const Tensor& t) { return norm(t, 0.5, {1}); }, shape, v, "norm0.5");
  check_gradient([](const Tensor& t) { return norm(t, kInf, {1}); }, shape, v, "norm inf");
  check_gradient([](const Tensor& t) { return mean(t, {0, 2}); }, shape, v, "mean");
  check_gradient([](const Tensor& t) { return sum(t.slice(1, 0, 4, 2), {-1}); }, shape, v, "sum sliced");
}

TEST(ReduceBackward, NormGradientIsZeroAtTheOrigin) {
  for (double p : {2.0, 3.0}) {
    Tensor x = zeros({2, 3}, {.dtype = DType::float64, .requires_grad = true});
    norm(x, p, {1}).backward(tensor({1.0, 1.0}));
    EXPECT_EQ(values_of(x.grad()), std::vector<double>(6, 0.0)) << "p = " << p;
  }
}

}  // namespace
