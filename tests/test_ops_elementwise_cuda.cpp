// CUDA elementwise kernels against their CPU twins (ctest label gpu; every test skips
// without a device). One table: every unary op (unary_into, backward helpers included)
// and every binary op and comparison (binary_into) x float32 / bfloat16 / float16 /
// float64 (+ int32 / int64 / uint8 where the op takes integers) x sizes 1, 7, 1023,
// 2^20 + 3 x contiguous / strided (transposed or stepped) / broadcast / misaligned
// inputs, run on CUDA into outputs poisoned with NaN (or a sentinel) and on the CPU from
// the same inputs. Tolerances: float32 1e-5, bfloat16 1e-2, float16 1e-3, float64 1e-12
// (relative, with the same absolute floor for values near 0); comparisons, where,
// integer results, casts, fills, rand / randn / randint and dropout are bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/generator.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/conv.h"
#include "engine/ops/nn.h"
#include "engine/ops/pooling.h"
#include "engine/ops/unary.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

const Device kCuda = Device::cuda(0);
constexpr DType kFloat[] = {DType::float32, DType::bfloat16, DType::float16, DType::float64};
constexpr DType kInt[] = {DType::int32, DType::int64, DType::uint8};
constexpr DType kAll[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                          DType::int32,   DType::int64,   DType::uint8,    DType::bool_};

double tolerance(DType dt) {
  return test::tolerance_for(dt, {.float64 = 1e-12, .float32 = 1e-5, .bfloat16 = 1e-2, .float16 = 1e-3});
}

// The bytes of a tensor's elements in row-major order (copied to the CPU, made dense).
std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<uint8_t> b(c.nbytes());
  if (!b.empty()) std::memcpy(b.data(), c.raw_data(), b.size());
  return b;
}

// got (any device) against want (CPU): within tolerance(dtype) for floats, else exact.
::testing::AssertionResult matches(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "shape/dtype " << shape_str(got.shape()) << " " << got.dtype()
                                         << " vs " << shape_str(want.shape()) << " " << want.dtype();
  const double tol = tolerance(want.dtype());
  if (tol == 0.0) {
    if (bytes_of(got) == bytes_of(want)) return ::testing::AssertionSuccess();
    std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i] != w[i])
        return ::testing::AssertionFailure() << "element " << i << ": CUDA " << g[i] << ", CPU " << w[i];
    return ::testing::AssertionFailure() << "bytes differ";
  }
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    const bool both_nan = std::isnan(g[i]) && std::isnan(w[i]);
    const bool same_inf = std::isinf(w[i]) && g[i] == w[i];
    if (both_nan || same_inf) continue;
    if (!(std::fabs(g[i] - w[i]) <= tol * (std::fabs(w[i]) + 1.0)))
      return ::testing::AssertionFailure() << "element " << i << " of " << g.size() << ": CUDA " << g[i] << ", CPU "
                                           << w[i] << " (tolerance " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

// ---- inputs ---------------------------------------------------------------------------

enum class Layout { contiguous, strided, broadcast, misaligned };
constexpr Layout kLayouts[] = {Layout::contiguous, Layout::strided, Layout::broadcast, Layout::misaligned};
const char* name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::strided: return "strided";
    case Layout::broadcast: return "broadcast";
    case Layout::misaligned: return "misaligned";
  }
  return "?";
}

// Sizes 1, 7, 1023 and 2^20 + 3 = 1141 * 919 as 2-D shapes.
const std::vector<Shape> kShapes = {{1, 1}, {7, 1}, {31, 33}, {1141, 919}};

// Values in [lo, hi) (whole numbers, truncated toward zero, for integer dtypes or when
// `integral`; 0/1 for bool), a pure function of the seed.
Tensor values(const Shape& shape, DType dt, uint64_t seed, double lo, double hi, bool integral = false) {
  Generator g(seed);
  Tensor u = rand(shape, {.dtype = DType::float64}, &g);
  Tensor v = add(mul(u, hi - lo), lo);
  if (dt == DType::bool_) return gt(u, 0.5);
  if (integral || !is_floating(dt)) return v.to(DType::int64).to(dt);
  return v.to(dt);
}

// An input of logical `shape` in layout l on `device`: the same values on every device.
Tensor input(const Shape& shape, Layout l, DType dt, uint64_t seed, double lo, double hi, Device device,
             bool integral = false) {
  const int64_t r = shape[0], c = shape[1], n = r * c;
  switch (l) {
    case Layout::contiguous: return values(shape, dt, seed, lo, hi, integral).to(device);
    case Layout::strided: {
      if (r > 1 && c > 1) return values({c, r}, dt, seed, lo, hi, integral).to(device).t();
      Tensor stepped = values({2 * n}, dt, seed, lo, hi, integral).to(device).slice(0, 0, 2 * n, 2);
      return c == 1 ? stepped.unsqueeze(1) : stepped.unsqueeze(0);
    }
    case Layout::broadcast: return values({1, c}, dt, seed, lo, hi, integral).to(device).expand(shape);
    case Layout::misaligned:
      return values({n + 1}, dt, seed, lo, hi, integral).to(device).slice(0, 1, n + 1).view(shape);
  }
  return Tensor();
}

// An output on `device` poisoned with NaN (floats) or a sentinel, so unwritten elements show.
Tensor poisoned(const Shape& shape, DType dt, Device device) {
  const double poison = is_floating(dt) ? std::numeric_limits<double>::quiet_NaN() : dt == DType::bool_ ? 1.0 : 77.0;
  return full(shape, poison, {.dtype = dt, .device = device});
}

std::string label(const char* what, int op, DType dt, const Shape& shape, Layout la, Layout lb) {
  return std::string(what) + " " + std::to_string(op) + " " + std::string(dtype_name(dt)) + " " + shape_str(shape) +
         " " + name(la) + "/" + name(lb);
}

// ---- unary ----------------------------------------------------------------------------

constexpr UnaryOp kUnaryOps[] = {
    UnaryOp::neg,       UnaryOp::abs,       UnaryOp::exp,       UnaryOp::log,       UnaryOp::sqrt,
    UnaryOp::rsqrt,     UnaryOp::sin,       UnaryOp::cos,       UnaryOp::tanh,      UnaryOp::sigmoid,
    UnaryOp::relu,      UnaryOp::gelu,      UnaryOp::gelu_tanh, UnaryOp::silu,      UnaryOp::sign,
    UnaryOp::gelu_grad, UnaryOp::gelu_tanh_grad, UnaryOp::silu_grad, UnaryOp::sigmoid_grad_from_out,
    UnaryOp::tanh_grad_from_out};

bool takes_integers(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::relu || op == UnaryOp::sign;
}

TEST(ElementwiseCuda, EveryUnaryOpMatchesTheCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  std::vector<DType> dtypes(std::begin(kFloat), std::end(kFloat));
  dtypes.insert(dtypes.end(), std::begin(kInt), std::end(kInt));
  for (UnaryOp op : kUnaryOps)
    for (DType dt : dtypes) {
      if (!is_floating(dt) && !takes_integers(op)) continue;
      const bool positive = op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt;
      const double lo = positive ? 0.05 : dt == DType::uint8 ? 0 : -4, hi = dt == DType::uint8 ? 250 : 4;
      for (const Shape& shape : kShapes)
        for (Layout l : {Layout::contiguous, Layout::strided, Layout::broadcast}) {
          const uint64_t seed = 1000 + static_cast<uint64_t>(op);
          Tensor want = poisoned(shape, dt, Device::cpu());
          unary_into(op, want, input(shape, l, dt, seed, lo, hi, Device::cpu()), "test");
          Tensor got = poisoned(shape, dt, kCuda);
          unary_into(op, got, input(shape, l, dt, seed, lo, hi, kCuda), "test");
          EXPECT_TRUE(matches(got, want)) << label("unary", static_cast<int>(op), dt, shape, l, l);
        }
    }
}

TEST(ElementwiseCuda, UnaryIntoStridedAndMisalignedOutputs) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : kFloat)
    for (const Shape& shape : kShapes) {
      Tensor a_cpu = input(shape, Layout::contiguous, dt, 5, -3, 3, Device::cpu());
      Tensor a_cuda = a_cpu.to(kCuda);
      for (Layout lo : {Layout::strided, Layout::misaligned}) {
        Tensor want = input(shape, lo, dt, 6, 0, 1, Device::cpu());
        Tensor got = input(shape, lo, dt, 6, 0, 1, kCuda);
        unary_into(UnaryOp::tanh, want, a_cpu, "test");
        unary_into(UnaryOp::tanh, got, a_cuda, "test");
        EXPECT_TRUE(matches(got, want)) << label("tanh into", 0, dt, shape, lo, lo);
      }
    }
}

// ---- binary and comparisons --------------------------------------------------------------

constexpr BinaryOp kArith[] = {BinaryOp::add,     BinaryOp::sub,     BinaryOp::mul, BinaryOp::div,
                               BinaryOp::maximum, BinaryOp::minimum, BinaryOp::pow};
constexpr BinaryOp kCompare[] = {BinaryOp::eq, BinaryOp::ne, BinaryOp::lt, BinaryOp::le, BinaryOp::gt, BinaryOp::ge};

TEST(ElementwiseCuda, EveryBinaryOpMatchesTheCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  std::vector<DType> dtypes(std::begin(kFloat), std::end(kFloat));
  dtypes.insert(dtypes.end(), std::begin(kInt), std::end(kInt));
  for (BinaryOp op : kArith)
    for (DType dt : dtypes) {
      const bool fl = is_floating(dt);
      if (op == BinaryOp::div && !fl) continue;
      const bool is_pow = op == BinaryOp::pow;
      double lo_a = dt == DType::uint8 ? 0 : -8, hi_a = 8, lo_b = lo_a, hi_b = hi_a;
      if (is_pow) {
        lo_a = fl ? 0.1 : 0, hi_a = fl ? 3 : 5, lo_b = fl ? -2 : 0, hi_b = fl ? 2 : 4;
      } else if (op == BinaryOp::div) {
        lo_b = 0.5, hi_b = 4;
      }
      for (double alpha : {1.0, fl ? 2.5 : 3.0}) {
        if (alpha != 1.0 && op != BinaryOp::add && op != BinaryOp::sub) continue;
        for (const Shape& shape : kShapes)
          for (Layout la : {Layout::contiguous, Layout::strided})
            for (Layout lb : kLayouts) {
              const uint64_t seed = 2000 + static_cast<uint64_t>(op) * 10;
              auto operands = [&](Device d) {
                Tensor a = input(shape, la, dt, seed, lo_a, hi_a, d);
                Tensor b = input(shape, lb, dt, seed + 1, lo_b, hi_b, d);
                return std::pair{a, b};
              };
              auto [ac, bc] = operands(Device::cpu());
              auto [ag, bg] = operands(kCuda);
              Tensor want = poisoned(shape, dt, Device::cpu());
              binary_into(op, want, ac, bc, alpha, "test");
              Tensor got = poisoned(shape, dt, kCuda);
              binary_into(op, got, ag, bg, alpha, "test");
              EXPECT_TRUE(matches(got, want)) << label("binary", static_cast<int>(op), dt, shape, la, lb)
                                              << " alpha " << alpha;
              // The second operand as a 0-dim scalar (the contiguous path's broadcast input).
              Tensor s_cpu = bc.flatten().slice(0, 0, 1).reshape({});
              Tensor want_s = poisoned(shape, dt, Device::cpu());
              binary_into(op, want_s, ac, s_cpu, alpha, "test");
              Tensor got_s = poisoned(shape, dt, kCuda);
              binary_into(op, got_s, ag, s_cpu.to(kCuda), alpha, "test");
              EXPECT_TRUE(matches(got_s, want_s)) << label("binary scalar", static_cast<int>(op), dt, shape, la, lb);
            }
      }
    }
}

TEST(ElementwiseCuda, EveryComparisonMatchesTheCpuExactly) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (BinaryOp op : kCompare)
    for (DType dt : kAll)
      for (const Shape& shape : kShapes)
        for (Layout la : {Layout::contiguous, Layout::strided})
          for (Layout lb : kLayouts) {
            // Small integers (ties are frequent) in every dtype.
            const double lo = dt == DType::uint8 || dt == DType::bool_ ? 0 : -3;
            Tensor want = poisoned(shape, DType::bool_, Device::cpu());
            binary_into(op, want, input(shape, la, dt, 31, lo, 3, Device::cpu(), true),
                        input(shape, lb, dt, 32, lo, 3, Device::cpu(), true), 1.0, "test");
            Tensor got = poisoned(shape, DType::bool_, kCuda);
            binary_into(op, got, input(shape, la, dt, 31, lo, 3, kCuda, true),
                        input(shape, lb, dt, 32, lo, 3, kCuda, true), 1.0, "test");
            EXPECT_TRUE(matches(got, want)) << label("compare", static_cast<int>(op), dt, shape, la, lb);
          }
}

TEST(ElementwiseCuda, ComparisonsOfNaNAndMixedDtypes) {
  ZAE_SKIP_WITHOUT_CUDA();
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  Tensor a = tensor({nan, 1.0, -inf, 2.0, nan, 0.0, -0.0});
  Tensor b = tensor({nan, nan, -inf, 3.0, 1.0, -0.0, 0.0}, {}, {.dtype = DType::float64});
  for (BinaryOp op : kCompare) {
    Tensor want = empty({7}, {.dtype = DType::bool_});
    binary_into(op, want, a, b, 1.0, "test");
    Tensor got = empty({7}, {.dtype = DType::bool_, .device = kCuda});
    binary_into(op, got, a.to(kCuda), b.to(kCuda), 1.0, "test");
    EXPECT_TRUE(matches(got, want)) << "op " << static_cast<int>(op);
  }
  // maximum / minimum propagate NaN on the device as on the CPU.
  EXPECT_TRUE(matches(maximum(a.to(kCuda), b.to(DType::float32).to(kCuda)), maximum(a, b.to(DType::float32))));
  EXPECT_TRUE(matches(minimum(a.to(kCuda), b.to(DType::float32).to(kCuda)), minimum(a, b.to(DType::float32))));
}

// ---- where, fills, casts ---------------------------------------------------------------------

TEST(ElementwiseCuda, WhereAndMaskedFillMatchTheCpuExactly) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : kAll)
    for (const Shape& shape : kShapes)
      for (Layout lc : kLayouts)
        for (Layout la : {Layout::contiguous, Layout::strided, Layout::broadcast}) {
          const double lo = dt == DType::uint8 || dt == DType::bool_ ? 0 : -50;
          auto run = [&](Device d) {
            Tensor c = input(shape, lc, DType::bool_, 41, 0, 1, d);
            Tensor a = input(shape, la, dt, 42, lo, 50, d);
            Tensor b = input(shape, Layout::contiguous, dt, 43, lo, 50, d);
            return std::vector<Tensor>{where(c, a, b), where(c, a, full({}, 7.0, {.dtype = dt, .device = d})),
                                       masked_fill(b, c, 3.0)};
          };
          std::vector<Tensor> want = run(Device::cpu()), got = run(kCuda);
          for (size_t i = 0; i < want.size(); ++i) {
            EXPECT_TRUE(got[i].device().is_cuda());
            EXPECT_EQ(bytes_of(got[i]), bytes_of(want[i])) << label("where", static_cast<int>(i), dt, shape, lc, la);
          }
        }
}

TEST(ElementwiseCuda, FillsMatchTheCpuExactly) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : kAll)
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1023}, (int64_t{1} << 20) + 3})
      for (double v : {0.0, 1.0, -2.75, 1e6}) {
        if (dt == DType::uint8 && v < 0) continue;
        if (dt == DType::uint8 && v > 255) continue;
        Tensor got = full({n}, v, {.dtype = dt, .device = kCuda});
        EXPECT_TRUE(got.device().is_cuda());
        EXPECT_EQ(bytes_of(got), bytes_of(full({n}, v, {.dtype = dt}))) << dt << " n " << n << " value " << v;
      }
  // fill_ / zero_ through strided and misaligned views write only the view.
  for (DType dt : kFloat) {
    Tensor want = values({9, 13}, dt, 3, -1, 1);
    Tensor got = want.to(kCuda);
    want.slice(1, 1, 13, 3).fill_(2.5);
    got.slice(1, 1, 13, 3).fill_(2.5);
    want.t().slice(0, 2, 5).zero_();
    got.t().slice(0, 2, 5).zero_();
    EXPECT_EQ(bytes_of(got), bytes_of(want)) << dt;
  }
}

TEST(ElementwiseCuda, CastsBetweenEveryDtypePairAreBitIdentical) {
  ZAE_SKIP_WITHOUT_CUDA();
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  // Special values for float -> float casts: NaN, infinities, signed zeros, half overflow
  // and rounding boundaries, subnormals of every float format.
  Tensor special = tensor({nan, -nan, inf, -inf, 0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e-8, 6e-8, 3e-8, 1e-40,
                           3.0e38, 1.0 + 1.0 / 2048, 1.0 + 3.0 / 4096, 1.0 + 1.0 / 256, 1e-320},
                          {}, {.dtype = DType::float64});
  for (DType src : kAll)
    for (DType dst : kAll)
      for (const Shape& shape : kShapes)
        for (Layout l : {Layout::contiguous, Layout::strided, Layout::broadcast}) {
          // Values every conversion defines: [0, 200] into or out of uint8, else [-100, 200].
          const double lo = src == DType::uint8 || dst == DType::uint8 ? 0 : -100;
          Tensor x_cpu = input(shape, l, src, 51, lo, 200.9, Device::cpu());
          Tensor x_cuda = input(shape, l, src, 51, lo, 200.9, kCuda);
          Tensor got = x_cuda.to(dst);
          EXPECT_TRUE(got.device().is_cuda());
          EXPECT_EQ(bytes_of(got), bytes_of(x_cpu.to(dst))) << "cast " << src << " -> " << dst << " "
                                                              << shape_str(shape) << " " << name(l);
          // copy_ into a transposed destination converts on the way.
          if (shape[0] > 1 && shape[1] > 1) {
            Tensor d_cpu = zeros({shape[1], shape[0]}, {.dtype = dst}).t();
            Tensor d_cuda = zeros({shape[1], shape[0]}, {.dtype = dst, .device = kCuda}).t();
            d_cpu.copy_(x_cpu);
            d_cuda.copy_(x_cuda);
            EXPECT_EQ(bytes_of(d_cuda), bytes_of(d_cpu)) << "copy_ " << src << " -> " << dst;
          }
        }
  for (DType src : kFloat)
    for (DType dst : kFloat) {
      Tensor x = special.to(src);
      EXPECT_EQ(bytes_of(x.to(kCuda).to(dst)), bytes_of(x.to(dst))) << "special values " << src << " -> " << dst;
    }
}

// ---- random fills and dropout ---------------------------------------------------------------

TEST(ElementwiseCuda, RandRandnRandintAreBitIdenticalToTheCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1023}, (int64_t{1} << 20) + 3}) {
    for (DType dt : kFloat) {
      Generator gc(1234, 5), gg(1234, 5);
      EXPECT_EQ(bytes_of(rand({n}, {.dtype = dt, .device = kCuda}, &gg)), bytes_of(rand({n}, {.dtype = dt}, &gc)))
          << "rand " << dt << " n " << n;
      EXPECT_EQ(bytes_of(randn({n}, {.dtype = dt, .device = kCuda}, &gg)), bytes_of(randn({n}, {.dtype = dt}, &gc)))
          << "randn " << dt << " n " << n;
      EXPECT_EQ(gg.offset(), gc.offset());
    }
    for (DType dt : {DType::int64, DType::int32, DType::uint8, DType::float32, DType::float16}) {
      Generator gc(99, 1), gg(99, 1);
      EXPECT_EQ(bytes_of(randint(-3, 200, {n}, {.dtype = dt, .device = kCuda}, &gg)),
                bytes_of(randint(-3, 200, {n}, {.dtype = dt}, &gc)))
          << "randint " << dt << " n " << n;
    }
  }
  // Multi-dimensional shapes draw in row-major order like the CPU.
  Generator gc(7), gg(7);
  EXPECT_EQ(bytes_of(randn({33, 17, 3}, {.device = kCuda}, &gg)), bytes_of(randn({33, 17, 3}, {}, &gc)));
}

TEST(ElementwiseCuda, DropoutMaskValuesAndGradientsAreBitIdentical) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : kFloat)
    for (const Shape& shape : kShapes)
      for (Layout l : {Layout::contiguous, Layout::strided, Layout::misaligned})
        for (double p : {0.1, 0.5, 1.0}) {
          auto run = [&](Device d) {
            Tensor x = input(shape, l, dt, 61, -2, 2, d).detach();
            x.requires_grad_(true);
            Generator g(2024, 3);
            Tensor y = dropout(x, p, true, &g);
            y.backward(input(shape, Layout::contiguous, dt, 62, -1, 1, d));
            return std::pair{y, x.grad()};
          };
          auto [y_cpu, g_cpu] = run(Device::cpu());
          auto [y_cuda, g_cuda] = run(kCuda);
          EXPECT_TRUE(y_cuda.device().is_cuda());
          EXPECT_EQ(bytes_of(y_cuda), bytes_of(y_cpu)) << dt << " " << shape_str(shape) << " " << name(l) << " p " << p;
          EXPECT_EQ(bytes_of(g_cuda), bytes_of(g_cpu)) << dt << " " << shape_str(shape) << " " << name(l) << " p " << p;
        }
}

// ---- ops through autograd, in-place ops, errors ------------------------------------------------

TEST(ElementwiseCuda, ChainedOpsAndGradientsMatchTheCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::float32, DType::float64}) {
    auto run = [&](Device d) {
      Tensor x = input({31, 33}, Layout::contiguous, dt, 71, -2, 2, d).detach().requires_grad_(true);
      Tensor w = input({31, 33}, Layout::strided, dt, 72, 0.5, 2, d).detach().requires_grad_(true);
      Tensor y = add(mul(gelu(x), w), div(sigmoid(x), w), 0.5);
      y = where(gt(x, 0.0), y, mul(y, -1.5));
      y = pow(relu(y) + 1.0, 1.5) - silu(x) * tanh(w);
      y.backward(ones_like(y));
      return std::vector<Tensor>{y, x.grad(), w.grad()};
    };
    std::vector<Tensor> want = run(Device::cpu()), got = run(kCuda);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(matches(got[i], want[i])) << dt << " output " << i;
  }
}

TEST(ElementwiseCuda, InPlaceOpsAndOverlappingViews) {
  ZAE_SKIP_WITHOUT_CUDA();
  auto run = [&](Device d) {
    Tensor x = input({64, 48}, Layout::contiguous, DType::float32, 81, -1, 1, d);
    Tensor y = input({64, 48}, Layout::strided, DType::float32, 82, -1, 1, d);
    x.add_(y, 2.0);
    x.mul_(0.5);
    x.div_(3.0);
    x.t().slice(0, 0, 10).add_(1.0);
    // Overlapping, not identical, views: the result is staged as on the CPU.
    Tensor flat = x.flatten();
    binary_into(BinaryOp::add, flat.slice(0, 1, flat.numel()), flat.slice(0, 0, flat.numel() - 1),
                flat.slice(0, 1, flat.numel()), 1.0, "test");
    return x;
  };
  EXPECT_TRUE(matches(run(kCuda), run(Device::cpu())));
}

TEST(ElementwiseCuda, AutoDeviceStaysOnTheCpuUntilTheGpuSuiteHasRun) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Every op family has CUDA kernels, but none has run on a GPU yet (engine/device.h):
  // explicit Device::cuda() works, "auto" keeps choosing the CPU until this suite passes.
  EXPECT_FALSE(cuda::ops_available());
  Tensor x = ones({1, 1, 4, 4}, {.device = kCuda});
  EXPECT_EQ(max_pool2d(x, {2, 2}).device(), kCuda);
}

TEST(ElementwiseCuda, MixedDevicesAreAnError) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor a = ones({3}, {.device = kCuda});
  Tensor b = ones({3});
  test::expect_throws_with([&] { add(a, b); }, {"add", "one device", "cuda:0", "cpu"});
  test::expect_throws_with([&] { where(gt(b, 0.0), a, a); }, {"where", "cuda:0", "cpu"});
}

}  // namespace
}  // namespace zae
