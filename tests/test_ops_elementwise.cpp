// Elementwise op family: unary ops, binary ops with broadcasting and promotion,
// comparisons, where / masked_fill, the in-place ops that go through binary_into,
// and the backward formulas. Forward values are checked against closed forms
// evaluated in double on the inputs' actual (rounded) values.
//
// Invariants checked: every unary op and derivative helper in float32/float64
// (some in bfloat16/float16), integer neg/abs/sign/relu/add/compare/pow; broadcasting
// ([3,1]x[1,4], scalars, [2,3,4]x[4]); transposed, stepped and expanded inputs;
// exact and partial aliasing of out with an input; sizes 0, 1, 7, 1023, 65537;
// NaN propagation in maximum/minimum; error messages naming op, shapes and dtypes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/unary.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::expect_close;
using test::expect_throws_with;
using test::random_tensor;
using Values = std::vector<double>;

Tensor from_values(const Values& v, const Shape& shape, DType dt = DType::float64) {
  return tensor(v, shape, {.dtype = DType::float64}).to(dt);
}
Values values(const Tensor& t) { return t.to_vector<double>(); }
Values map(const Values& v, const std::function<double(double)>& f) {
  Values out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f(v[i]);
  return out;
}
Values map2(const Values& a, const Values& b, const std::function<double(double, double)>& f) {
  Values out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = f(a[i], b[i]);
  return out;
}
// rtol for results of dtype dt computed from inputs of that dtype.
double rtol_of(DType dt) {
  switch (dt) {
    case DType::float64: return 1e-12;
    case DType::float32: return 2e-6;
    case DType::float16: return 2e-3;
    default: return 1.6e-2;  // bfloat16
  }
}

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double phi_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::numbers::sqrt2)); }
double gelu_ref(double x) { return x * phi_cdf(x); }
const double kK = std::sqrt(2.0 / std::numbers::pi);
double gelu_tanh_ref(double x) { return 0.5 * x * (1.0 + std::tanh(kK * (x + 0.044715 * x * x * x))); }
double sign_ref(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

// sign has no public op; reach it through unary_into.
Tensor apply_sign(const Tensor& x) {
  Tensor out = empty_like(x);
  unary_into(UnaryOp::sign, out, x, "sign");
  return out;
}

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  bool positive = false;  // domain x > 0
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, true},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); }},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }},
      {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_ref},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::tanh); }, gelu_tanh_ref},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }},
      {"sign", [](const Tensor& x) { return apply_sign(x); }, sign_ref},
      {"pow3", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }},
      {"pow2", [](const Tensor& x) { return pow(x, 2.0); }, [](double x) { return x * x; }},
      {"pow_half", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [](double x) { return std::min(std::max(x, -0.5), 0.7); }},
      {"clamp_min", [](const Tensor& x) { return clamp(x, 0.1, std::nullopt); },
       [](double x) { return std::max(x, 0.1); }},
  };
}

// Random input of `shape` and dtype dt (positive for log/sqrt domains).
Tensor input_for(const UnaryCase& c, const Shape& shape, DType dt, uint64_t seed) {
  Tensor x = random_tensor(shape, DType::float64, seed);
  if (c.positive) x = from_values(map(values(x), [](double v) { return std::fabs(v) + 0.1; }), shape);
  return x.to(dt);
}

void check_unary(const UnaryCase& c, const Tensor& x, double rtol) {
  SCOPED_TRACE(std::string(c.name) + " dtype " + std::string(dtype_name(x.dtype())) + " shape " +
               shape_str(x.shape()));
  Tensor y = c.op(x);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), x.dtype());
  expect_close(y, map(values(x), c.ref), rtol, rtol);
}

TEST(Unary, EveryOpFloat32AndFloat64) {
  for (const UnaryCase& c : unary_cases())
    for (DType dt : {DType::float32, DType::float64}) check_unary(c, input_for(c, {5, 13}, dt, 1), rtol_of(dt));
}

TEST(Unary, SixteenBitFloats) {
  for (const UnaryCase& c : unary_cases())
    for (DType dt : {DType::bfloat16, DType::float16}) check_unary(c, input_for(c, {37}, dt, 2), 2 * rtol_of(dt));
}

TEST(Unary, NonContiguousAndSizes) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor base = input_for(c, {6, 10}, DType::float32, 3);
    check_unary(c, base.t(), rtol_of(DType::float32));                 // transposed
    check_unary(c, base.slice(1, 1, 10, 3), rtol_of(DType::float32));  // stepped
    check_unary(c, base.slice(0, 0, 1).expand({4, 10}), rtol_of(DType::float32));
  }
  for (int64_t n : {0, 1, 7, 1023, 65537}) {
    const UnaryCase c = unary_cases()[2];  // exp
    check_unary(c, input_for(c, {n}, DType::float32, 4), rtol_of(DType::float32));
    check_unary(c, input_for(c, {2 * n}, DType::float64, 5).slice(0, 0, 2 * n, 2), rtol_of(DType::float64));
  }
  check_unary(unary_cases()[8], scalar_tensor(0.3), 1e-6);  // 0-dim
}

TEST(Unary, DerivativeHelpers) {
  Tensor x = random_tensor({301}, DType::float64, 6);
  Values xv = values(x);
  auto run = [&](UnaryOp op, const Tensor& in) {
    Tensor out = empty_like(in);
    unary_into(op, out, in, "helper");
    return out;
  };
  // Closed forms, and central differences of the forward kernels.
  auto fd = [&](UnaryOp f) {
    const double h = 1e-6;
    Values p = values(run(f, add(x, h))), m = values(run(f, sub(x, h)));
    return map2(p, m, [h](double a, double b) { return (a - b) / (2 * h); });
  };
  auto gelu_grad_ref = [](double v) {
    return phi_cdf(v) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * std::numbers::pi);
  };
  expect_close(run(UnaryOp::gelu_grad, x), map(xv, gelu_grad_ref), 1e-12, 1e-12);
  expect_close(run(UnaryOp::gelu_grad, x), fd(UnaryOp::gelu), 1e-6, 1e-7);
  expect_close(run(UnaryOp::gelu_tanh_grad, x), fd(UnaryOp::gelu_tanh), 1e-6, 1e-7);
  expect_close(run(UnaryOp::silu_grad, x),
               map(xv, [](double v) { return sigmoid_ref(v) * (1 + v * (1 - sigmoid_ref(v))); }), 1e-12, 1e-12);
  expect_close(run(UnaryOp::silu_grad, x), fd(UnaryOp::silu), 1e-6, 1e-7);
  expect_close(run(UnaryOp::sigmoid_grad_from_out, x), map(xv, [](double y) { return y * (1 - y); }), 1e-12, 1e-14);
  expect_close(run(UnaryOp::tanh_grad_from_out, x), map(xv, [](double y) { return 1 - y * y; }), 1e-12, 1e-14);
  Tensor xf = x.to(DType::float32);
  expect_close(run(UnaryOp::gelu_tanh_grad, xf), fd(UnaryOp::gelu_tanh), 1e-5, 1e-5);
}

TEST(Unary, Integers) {
  for (DType dt : {DType::int64, DType::int32}) {
    Tensor x = from_values({-3, 0, 5, -7}, {4}, dt);
    EXPECT_EQ(neg(x).dtype(), dt);
    expect_close(neg(x), {3, 0, -5, 7});
    expect_close(abs(x), {3, 0, 5, 7});
    expect_close(relu(x), {0, 0, 5, 0});
    expect_close(apply_sign(x), {-1, 0, 1, -1});
    expect_close(pow(x, 2.0), {9, 0, 25, 49});
    EXPECT_EQ(pow(x, 2.0).dtype(), dt);
  }
  expect_close(pow(from_values({2, 3}, {2}, DType::int64), 10.0), {1024, 59049});
  expect_close(abs(from_values({0, 200}, {2}, DType::uint8)), {0, 200});
  Tensor f = pow(from_values({4, 9}, {2}, DType::int64), 0.5);  // non-integer exponent: float32
  EXPECT_EQ(f.dtype(), DType::float32);
  expect_close(f, {2, 3});
}

TEST(Unary, InPlaceAndOverlappingOut) {
  Tensor x = from_values({0.0, 1.0, 2.0, 3.0}, {4});
  unary_into(UnaryOp::exp, x, x, "exp_");  // exact alias
  expect_close(x, {1.0, std::exp(1.0), std::exp(2.0), std::exp(3.0)}, 1e-15);
  Tensor y = from_values({1, 2, 3, 4, 5}, {5});
  unary_into(UnaryOp::neg, y.slice(0, 1, 5), y.slice(0, 0, 4), "neg");  // partial overlap: staged
  expect_close(y, {1, -1, -2, -3, -4});
}

TEST(Binary, ForwardFloat32AndFloat64) {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<double(double, double)> ref;
  };
  std::vector<Case> cases = {
      {"add", [](auto& a, auto& b) { return add(a, b); }, [](double a, double b) { return a + b; }},
      {"add_alpha", [](auto& a, auto& b) { return add(a, b, -2.5); }, [](double a, double b) { return a - 2.5 * b; }},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, [](double a, double b) { return a - b; }},
      {"sub_alpha", [](auto& a, auto& b) { return sub(a, b, 3.0); }, [](double a, double b) { return a - 3 * b; }},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, [](double a, double b) { return a * b; }},
      {"div", [](auto& a, auto& b) { return div(a, b); }, [](double a, double b) { return a / b; }},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }, [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }, [](double a, double b) { return std::min(a, b); }},
      {"pow", [](auto& a, auto& b) { return pow(abs(a), b); },
       [](double a, double b) { return std::pow(std::fabs(a), b); }},
  };
  for (const Case& c : cases) {
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
      SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(dt)));
      Tensor a = random_tensor({4, 33}, dt, 7), b = random_tensor({4, 33}, dt, 8);
      Tensor y = c.op(a, b);
      EXPECT_EQ(y.dtype(), dt);
      // 16-bit results are rounded once from the float result.
      expect_close(y, map2(values(a), values(b), c.ref), rtol_of(dt), dt == DType::float64 ? 1e-14 : rtol_of(dt));
    }
  }
}

TEST(Binary, Broadcasting) {
  Tensor a = random_tensor({3, 1}, DType::float64, 9), b = random_tensor({1, 4}, DType::float64, 10);
  Values av = values(a), bv = values(b), want;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) want.push_back(av[i] * bv[j]);
  Tensor y = mul(a, b);
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  expect_close(y, want, 1e-15);

  Tensor x = random_tensor({2, 3, 4}, DType::float32, 11), r = random_tensor({4}, DType::float32, 12);
  Values xv = values(x), rv = values(r), w;
  for (size_t i = 0; i < xv.size(); ++i) w.push_back(xv[i] - rv[i % 4]);
  expect_close(sub(x, r), w, 1e-6, 1e-6);
  expect_close(add(r, scalar_tensor(2.0)), map(rv, [](double v) { return v + 2; }), 1e-6, 1e-6);
  expect_close(2.5 - r, map(rv, [](double v) { return 2.5 - v; }), 1e-6, 1e-6);
  expect_close(1.5 / r, map(rv, [](double v) { return 1.5 / v; }), 1e-6, 1e-6);
  expect_close(mul(r, 3.0), map(rv, [](double v) { return 3 * v; }), 1e-6, 1e-6);
  EXPECT_EQ(add(scalar_tensor(1.0), scalar_tensor(2.0)).dim(), 0);
}

TEST(Binary, NonContiguousInputs) {
  Tensor base = random_tensor({5, 8}, DType::float32, 13), other = random_tensor({8, 5}, DType::float32, 14);
  Tensor t = base.t();  // (8, 5), non-contiguous
  expect_close(add(t, other), map2(values(t), values(other), std::plus<double>()), 1e-6, 1e-6);
  Tensor s = base.slice(1, 0, 8, 2);  // (5, 4) with step 2
  Tensor o2 = random_tensor({5, 4}, DType::float32, 15);
  expect_close(mul(s, o2), map2(values(s), values(o2), std::multiplies<double>()), 1e-6, 1e-6);
  Tensor e = random_tensor({1, 8}, DType::float32, 16).expand({5, 8});
  expect_close(sub(e, base), map2(values(e), values(base), std::minus<double>()), 1e-6, 1e-6);
  expect_close(exp(t), map(values(t), [](double v) { return std::exp(v); }), 2e-6, 1e-6);
}

TEST(Binary, TransposedOperandsVisitedInBlocks) {
  // Inner dims >= 32 with a transposed operand take the blocked traversal, including
  // partial blocks (37, 70) and a batch dim.
  Tensor a = random_tensor({2, 70, 37}, DType::float32, 22).transpose(1, 2);  // (2, 37, 70)
  Tensor b = random_tensor({2, 37, 70}, DType::float32, 23);
  Values av = values(a), bv = values(b);
  expect_close(add(a, b), map2(av, bv, std::plus<double>()), 1e-6, 1e-6);
  expect_close(sub(b, a, 0.5), map2(bv, av, [](double x, double y) { return x - 0.5 * y; }), 1e-6, 1e-6);
  expect_close(exp(a), map(av, [](double v) { return std::exp(v); }), 2e-6, 1e-6);
  expect_close(where(gt(a, b), a, b), map2(av, bv, [](double x, double y) { return std::max(x, y); }));
  Tensor o = zeros({70, 37}).t();  // a transposed output
  binary_into(BinaryOp::mul, o, a.select(0, 1), b.select(0, 1), 1.0, "mul");
  Values a1 = values(a.select(0, 1)), b1 = values(b.select(0, 1));
  expect_close(o, map2(a1, b1, std::multiplies<double>()), 1e-6, 1e-6);
}

TEST(Binary, SizesExerciseParallelChunks) {
  for (int64_t n : {0, 1, 7, 1023, 65537}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor a = random_tensor({n}, DType::float32, 17), b = random_tensor({n}, DType::float32, 18);
    Values av = values(a), bv = values(b);
    Tensor y = add(a, b);
    EXPECT_EQ(y.shape(), (Shape{n}));
    expect_close(y, map2(av, bv, std::plus<double>()), 1e-6, 1e-6);
    expect_close(mul(a, 0.5), map(av, [](double v) { return 0.5 * v; }), 1e-6, 1e-6);  // broadcast scalar run
    expect_close(gt(a, b), map2(av, bv, [](double x, double z) { return x > z ? 1.0 : 0.0; }));
    expect_close(where(lt(a, 0.0), b, a), map2(av, bv, [](double x, double z) { return x < 0 ? z : x; }));
    // Strided: every other element of a longer tensor.
    Tensor c = random_tensor({2 * n}, DType::float64, 19).slice(0, 0, 2 * n, 2);
    expect_close(sub(c, b), map2(values(c), bv, std::minus<double>()), 1e-6, 1e-6);
  }
}

TEST(Binary, InPlaceAliasing) {
  Tensor x = from_values({1, 2, 3, 4, 5, 6}, {2, 3}, DType::float32);
  x.add_(x);  // out is a and b
  expect_close(x, {2, 4, 6, 8, 10, 12});
  x.mul_(x);
  expect_close(x, {4, 16, 36, 64, 100, 144});
  x.add_(from_values({1, 2, 3}, {3}, DType::float32), -2.0);  // broadcast other, alpha
  expect_close(x, {2, 12, 30, 62, 96, 138});
  x.sub_(from_values({2}, {1}, DType::float32));
  expect_close(x, {0, 10, 28, 60, 94, 136});
  x.mul_(0.5);
  expect_close(x, {0, 5, 14, 30, 47, 68});

  Tensor sq = from_values({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  sq.add_(sq.t());  // overlaps without being the same view: staged
  expect_close(sq, {2, 6, 10, 6, 10, 14, 10, 14, 18});
  Tensor row = sq.select(0, 1);  // a view: writes reach the base
  row.mul_(row);
  expect_close(sq, {2, 6, 10, 36, 100, 196, 10, 14, 18});
  uint64_t v = sq.version();
  sq.add_(1.0);
  EXPECT_GT(sq.version(), v);

  Tensor xi = from_values({1, 2}, {2}, DType::int64);
  xi.add_(from_values({3, 4}, {2}, DType::int64));
  expect_close(xi, {4, 6});
  expect_throws_with([&] { xi.add_(from_values({0.5, 1}, {2}, DType::float32)); }, {"add_", "float32", "int64"});
  Tensor ex = from_values({1}, {1}).expand({3});
  expect_throws_with([&] { ex.add_(1.0); }, {"add_", "[3]"});
  expect_throws_with([&] { x.add_(from_values({1, 2}, {2}, DType::float32)); }, {"add_", "[2]", "[2, 3]"});
}

TEST(Binary, PromotionAndIntegers) {
  Tensor i64 = from_values({7, -3, 0, 9}, {4}, DType::int64);
  Tensor i64b = from_values({2, 2, 5, -4}, {4}, DType::int64);
  EXPECT_EQ(add(i64, i64b).dtype(), DType::int64);
  expect_close(add(i64, i64b), {9, -1, 5, 5});
  expect_close(sub(i64, i64b, 2.0), {3, -7, -10, 17});
  expect_close(mul(i64, 3.0), {21, -9, 0, 27});
  EXPECT_EQ(mul(i64, 3.0).dtype(), DType::int64);
  Tensor q = div(i64, i64b);  // true division
  EXPECT_EQ(q.dtype(), DType::float32);
  expect_close(q, {3.5, -1.5, 0, -2.25});
  EXPECT_EQ(div(i64, 2.0).dtype(), DType::float32);
  Tensor f = add(i64, 0.5);  // non-integer scalar: float32
  EXPECT_EQ(f.dtype(), DType::float32);
  expect_close(f, {7.5, -2.5, 0.5, 9.5});
  expect_close(maximum(i64, i64b), {7, 2, 5, 9});
  expect_close(pow(from_values({2, -3}, {2}, DType::int32), from_values({5, 3}, {2}, DType::int32)), {32, -27});

  Tensor a32 = from_values({1.5}, {1}, DType::float32), a64 = from_values({2.25}, {1});
  EXPECT_EQ(add(a32, a64).dtype(), DType::float64);
  EXPECT_EQ(add(a32, from_values({1}, {1}, DType::int32)).dtype(), DType::float32);
  EXPECT_EQ(mul(from_values({1}, {1}, DType::bfloat16), from_values({1}, {1}, DType::float16)).dtype(),
            DType::float32);
  Tensor bsum = add(from_values({1, 0}, {2}, DType::bool_), from_values({5, 6}, {2}, DType::int64));
  EXPECT_EQ(bsum.dtype(), DType::int64);
  expect_close(bsum, {6, 6});
}

TEST(Binary, MaximumMinimumPropagateNaN) {
  const double nan = std::nan("");
  Tensor a = from_values({nan, 1, 2, -0.5}, {4}, DType::float32), b = from_values({0, nan, 2, 3}, {4}, DType::float32);
  expect_close(maximum(a, b), {nan, nan, 2, 3});
  expect_close(minimum(a, b), {nan, nan, 2, -0.5});
  expect_close(clamp(a, 0.0, 1.5), {nan, 1, 1.5, 0});
}

TEST(Compare, AllOpsAndDtypes) {
  struct Case {
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<Tensor(const Tensor&, double)> op_scalar;
    std::function<bool(double, double)> ref;
  };
  std::vector<Case> cases = {
      {[](auto& a, auto& b) { return eq(a, b); }, [](auto& a, double b) { return eq(a, b); }, std::equal_to<double>()},
      {[](auto& a, auto& b) { return ne(a, b); }, [](auto& a, double b) { return ne(a, b); },
       std::not_equal_to<double>()},
      {[](auto& a, auto& b) { return lt(a, b); }, [](auto& a, double b) { return lt(a, b); }, std::less<double>()},
      {[](auto& a, auto& b) { return le(a, b); }, [](auto& a, double b) { return le(a, b); },
       std::less_equal<double>()},
      {[](auto& a, auto& b) { return gt(a, b); }, [](auto& a, double b) { return gt(a, b); }, std::greater<double>()},
      {[](auto& a, auto& b) { return ge(a, b); }, [](auto& a, double b) { return ge(a, b); },
       std::greater_equal<double>()},
  };
  auto as_double = [](const std::function<bool(double, double)>& f) {
    return [f](double x, double y) { return f(x, y) ? 1.0 : 0.0; };
  };
  for (const Case& c : cases) {
    for (DType dt : {DType::float32, DType::float64, DType::float16, DType::int64, DType::int32}) {
      Tensor a = from_values({1, 2, 3, -1, 5, 2}, {2, 3}, dt), b = from_values({1, 3, 2}, {3}, dt);
      Tensor y = c.op(a, b);
      EXPECT_EQ(y.dtype(), DType::bool_);
      EXPECT_FALSE(y.requires_grad());
      expect_close(y, map2(values(a), {1, 3, 2, 1, 3, 2}, as_double(c.ref)));
      expect_close(c.op_scalar(a, 2.0), map(values(a), [&](double v) { return as_double(c.ref)(v, 2.0); }));
    }
    Tensor ai = from_values({0, 1, 2}, {3}, DType::int64);  // int vs non-integer scalar compares in float
    expect_close(c.op_scalar(ai, 0.5), map(values(ai), [&](double v) { return as_double(c.ref)(v, 0.5); }));
  }
  Tensor x = random_tensor({3}, DType::float32, 20).requires_grad_();
  EXPECT_FALSE(gt(x, 0.0).requires_grad());
}

TEST(Where, ForwardAndMaskedFill) {
  Tensor cond = from_values({1, 0, 1}, {3, 1}, DType::bool_);
  Tensor a = from_values({1, 2, 3, 4}, {1, 4}, DType::float32);
  Tensor b = scalar_tensor(-1.0, {.dtype = DType::float64});
  Tensor y = where(cond, a, b);
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  EXPECT_EQ(y.dtype(), DType::float64);
  expect_close(y, {1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4});
  Tensor x = from_values({1, 2, 3, 4, 5, 6}, {2, 3}, DType::int64);
  Tensor m = masked_fill(x, from_values({0, 1, 0}, {3}, DType::bool_), -7);
  EXPECT_EQ(m.dtype(), DType::int64);
  expect_close(m, {1, -7, 3, 4, -7, 6});
  expect_close(masked_fill(x.t(), from_values({1, 0}, {2}, DType::bool_), 0), {0, 4, 0, 5, 0, 6});
  expect_throws_with([&] { where(from_values({1}, {1}, DType::float32), a, b); }, {"where", "bool", "float32"});
  Tensor wide_mask = from_values({1, 0, 1, 1, 0, 1}, {2, 3}, DType::bool_);
  expect_throws_with([&] { masked_fill(from_values({1, 2, 3}, {3}), wide_mask, 0); }, {"masked_fill", "[2, 3]", "[3]"});
  expect_throws_with([&] { masked_fill(x, from_values({1}, {1}, DType::int64), 0); }, {"masked_fill", "bool", "int64"});
}

TEST(Errors, MessagesNameOpShapesAndDtypes) {
  Tensor a = zeros({2, 3}), b = zeros({4});
  expect_throws_with([&] { add(a, b); }, {"add: shapes [2, 3] and [4] cannot be broadcast"});
  expect_throws_with([&] { mul(a, zeros({3, 3})); }, {"mul", "[2, 3]", "[3, 3]"});
  expect_throws_with([&] { where(gt(a, 0.0), a, b); }, {"where", "[2, 3]", "[4]"});
  Tensor i = zeros({2}, {.dtype = DType::int64});
  expect_throws_with([&] { exp(i); }, {"exp", "int64"});
  expect_throws_with([&] { gelu(i); }, {"gelu", "int64"});
  expect_throws_with([&] { neg(zeros({2}, {.dtype = DType::bool_})); }, {"neg", "bool"});
  expect_throws_with([&] { pow(i, -1.0); }, {"pow", "negative", "int64"});
  expect_throws_with([&] { clamp(a, std::nullopt, std::nullopt); }, {"clamp"});
  expect_throws_with([&] { add(a, Tensor()); }, {"add", "undefined"});
  expect_throws_with([&] { binary_into(BinaryOp::div, i, i, i, 1.0, "div_"); }, {"div_", "int64"});
}

TEST(Errors, DeviceMismatchNamesBothDevices) {
  if (!cuda::is_available()) GTEST_SKIP() << "device mismatch needs a CUDA device";
  Tensor a = zeros({2, 3});
  Tensor g = zeros({2, 3}, {.device = Device::cuda()});
  expect_throws_with([&] { add(a, g); }, {"add", "cpu", "cuda:0"});
  expect_throws_with([&] { where(gt(a, 0.0), a, g); }, {"where", "cpu", "cuda:0"});
  // No CUDA elementwise kernels in this build yet: a clear error naming op, device and dtype.
  expect_throws_with([&] { exp(g); }, {"exp", "cuda:0", "float32"});
}

// ---- gradients ------------------------------------------------------------------------

Tensor leaf(const Values& v, const Shape& shape, DType dt = DType::float64) {
  return from_values(v, shape, dt).requires_grad_();
}
void backward_ones(const Tensor& y) { y.backward(ones_like(y)); }

TEST(Grad, BroadcastReducesWithSumTo) {
  Tensor a = leaf({1, 2, 3}, {3, 1}), b = leaf({1, 2, 3, 4}, {1, 4});
  backward_ones(add(a, b, 2.0));
  expect_close(a.grad(), {4, 4, 4});
  expect_close(b.grad(), {6, 6, 6, 6});
  Tensor c = leaf({1, 2, 3}, {3, 1}), d = leaf({1, 2, 3, 4}, {4});
  backward_ones(mul(c, d));
  expect_close(c.grad(), {10, 10, 10});
  expect_close(d.grad(), {6, 6, 6, 6});
  Tensor e = leaf({2, 4}, {2}), f = leaf({2}, {});
  backward_ones(sub(e, f, 3.0));
  expect_close(e.grad(), {1, 1});
  expect_close(f.grad(), {-6});
  Tensor p = leaf({1, 2}, {2}, DType::float32), q = leaf({3, 4}, {2});  // mixed dtypes
  backward_ones(mul(p, q));
  EXPECT_EQ(p.grad().dtype(), DType::float32);
  expect_close(p.grad(), {3, 4});
  expect_close(q.grad(), {1, 2});
  EXPECT_EQ(sum_to(ones({2, 3, 4}), {3, 1}).shape(), (Shape{3, 1}));
  expect_close(sum_to(ones({2, 3, 4}), {3, 1}), {8, 8, 8});
  expect_close(sum_to(ones({2, 3}), {}), {6});
}

TEST(Grad, DivAbsReluClamp) {
  Tensor a = leaf({1, -2}, {2}), b = leaf({4, 0.5}, {2});
  backward_ones(div(a, b));
  expect_close(a.grad(), {0.25, 2});
  expect_close(b.grad(), {-1.0 / 16, 8});
  Tensor x = leaf({-2, 0, 3}, {3});
  backward_ones(abs(x));
  expect_close(x.grad(), {-1, 0, 1});
  Tensor r = leaf({-2, 0, 3}, {3});
  backward_ones(relu(r));
  expect_close(r.grad(), {0, 0, 1});
  Tensor c = leaf({-1, -0.5, 0, 0.5, 1}, {5});
  backward_ones(clamp(c, -0.5, 0.5));
  expect_close(c.grad(), {0, 1, 1, 1, 0});
}

TEST(Grad, MaximumMinimumSplitTies) {
  Tensor a = leaf({1, 2, 3}, {3}), b = leaf({1, 3, 2}, {3});
  backward_ones(maximum(a, b));
  expect_close(a.grad(), {0.5, 0, 1});
  expect_close(b.grad(), {0.5, 1, 0});
  Tensor c = leaf({1, 2, 3}, {3}), d = leaf({1, 3, 2}, {3});
  backward_ones(minimum(c, d));
  expect_close(c.grad(), {0.5, 1, 0});
  expect_close(d.grad(), {0.5, 0, 1});
}

TEST(Grad, Pow) {
  Tensor x = leaf({-2, 0.5, 3}, {3});
  backward_ones(pow(x, 3.0));
  expect_close(x.grad(), {12, 0.75, 27}, 1e-14);
  Tensor z = leaf({0, 2}, {2});
  backward_ones(pow(z, 0.0));
  expect_close(z.grad(), {0, 0});
  Tensor a = leaf({2, 3, 0}, {3}), b = leaf({3, 0.5, 2}, {3});
  backward_ones(pow(a, b));
  expect_close(a.grad(), {12, 0.5 / std::sqrt(3.0), 0}, 1e-14);
  expect_close(b.grad(), {8 * std::log(2.0), std::sqrt(3.0) * std::log(3.0), 0}, 1e-14);
}

TEST(Grad, WhereAndMaskedFill) {
  Tensor cond = from_values({1, 0, 1}, {3, 1}, DType::bool_);
  Tensor a = leaf({1, 2}, {1, 2}), b = leaf({5}, {});
  backward_ones(where(cond, a, b));
  expect_close(a.grad(), {2, 2});
  expect_close(b.grad(), {2});
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  backward_ones(masked_fill(x, from_values({1, 0}, {2}, DType::bool_), 9.0));
  expect_close(x.grad(), {0, 1, 0, 1});
}

TEST(Grad, SmoothUnaryOpsMatchFiniteDifferences) {
  for (const UnaryCase& c : unary_cases()) {
    std::string name = c.name;
    if (name == "sign" || name == "relu" || name == "abs" || name.rfind("clamp", 0) == 0) continue;
    SCOPED_TRACE(name);
    Tensor x0 = input_for(c, {17}, DType::float64, 21);
    Tensor x = x0.detach().requires_grad_();
    backward_ones(c.op(x));
    const double h = 1e-6;
    Values p, m;
    {
      NoGradGuard ng;
      p = values(c.op(add(x0, h)));
      m = values(c.op(sub(x0, h)));
    }
    expect_close(x.grad(), map2(p, m, [h](double u, double v) { return (u - v) / (2 * h); }), 1e-6, 1e-7);
  }
}

}  // namespace
