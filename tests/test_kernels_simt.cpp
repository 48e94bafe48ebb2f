// The CUDA elementwise kernels' per-thread bodies (kernels/simt/*.h), run on the host
// (no GPU needed) for every thread of an emulated grid that makes the launcher's own
// decisions (dispatch_elementwise: vector path or 32-bit chunks, here with small chunk
// limits too), compared with the CPU twins on the same inputs: unary / binary / compare / where / cast / fill values
// within one unit in the last place of the storage type (the bodies are built here
// without the library's flags), random fills and dropout masks bit for bit.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops/factory.h"
#include "engine/ops/iter.h"
#include "engine/tensor.h"
#include "kernels/cpu/binary.h"
#include "kernels/cpu/copy.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/fill.h"
#include "kernels/cpu/unary.h"
#include "kernels/simt/binary_ops.h"
#include "kernels/simt/bits.h"
#include "kernels/simt/elementwise_body.h"
#include "kernels/simt/launch_plan.h"
#include "kernels/simt/offset_calc.h"
#include "kernels/simt/random_body.h"
#include "kernels/simt/unary_ops.h"

namespace {

namespace ks = zae::kernels::simt;
namespace kc = zae::kernels::cpu;
using zae::BFloat16;
using zae::DType;
using zae::Half;
using zae::Shape;
using zae::Tensor;
using zae::kernels::StridedIter;

// ---- an emulated grid -------------------------------------------------------------

struct Grid {
  int64_t threads = 256;          // total threads of the emulated grid
  int64_t limit = ks::kMax32;     // 32-bit chunk limit (small values force chunking)
};

template <class Out, class F, size_t... I, class... In>
void emulate_impl(const Grid& g, const StridedIter<1 + sizeof...(In)>& it, Out* out, const F& f,
                  std::index_sequence<I...>, const In*... in) {
  constexpr int N = 1 + sizeof...(In);
  constexpr std::array<int, N> bytes{static_cast<int>(sizeof(Out)), static_cast<int>(sizeof(In))...};
  constexpr int W = ks::vector_width(bytes);
  ks::dispatch_elementwise<N>(
      it, std::array<const void*, N>{out, in...}, bytes, W,
      [&](const ks::DensePlan& plan) {
        for (int64_t t = 0; t < g.threads; ++t)
          ks::vector_body<W>(t, g.threads, plan.n, out, f, ks::Src<In>{in, plan.broadcast[I + 1]}...);
      },
      [&](const StridedIter<N>& chunk, const std::array<int64_t, N>& base, int64_t) {
        const auto oc = ks::OffsetCalc<N>::from(chunk);
        const auto n = static_cast<uint32_t>(chunk.numel());
        for (int64_t t = 0; t < g.threads; ++t)
          ks::strided_body<N>(static_cast<uint32_t>(t), static_cast<uint32_t>(g.threads), n, oc, out + base[0], f,
                              (in + base[I + 1])...);
      },
      g.limit);
}

/// Runs the generic elementwise kernels' logic (launch_elementwise) on the host.
template <class Out, class F, class... In>
void emulate(const Grid& g, const StridedIter<1 + sizeof...(In)>& it, Out* out, const F& f, const In*... in) {
  emulate_impl(g, it, out, f, std::index_sequence_for<In...>{}, in...);
}

// ---- comparison helpers --------------------------------------------------------------

// Distance in units in the last place of T between two values of T (0 for two NaNs).
template <class T>
int64_t ulp_distance(T a, T b) {
  using U = ks::bits_t<T>;
  const U ua = ks::to_bits(a), ub = ks::to_bits(b);
  if constexpr (zae::is_floating_v<T>) {
    const double da = static_cast<double>(static_cast<zae::acc_t<T>>(a));
    const double db = static_cast<double>(static_cast<zae::acc_t<T>>(b));
    if (std::isnan(da) || std::isnan(db)) return std::isnan(da) && std::isnan(db) ? 0 : INT64_MAX;
    // Map the sign-magnitude bit patterns to a monotonic integer line.
    constexpr int kBits = 8 * sizeof(T);
    auto line = [](U u) {
      const U sign = static_cast<U>(U(1) << (kBits - 1));
      return (u & sign) ? -static_cast<int64_t>(u & static_cast<U>(~sign)) : static_cast<int64_t>(u);
    };
    const int64_t la = line(ua), lb = line(ub);
    return la > lb ? la - lb : lb - la;
  } else {
    return ua == ub ? 0 : INT64_MAX;
  }
}

template <class T>
std::vector<T> copy_out(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.storage()->nbytes() / sizeof(T)));
  std::memcpy(v.data(), t.storage()->data(), v.size() * sizeof(T));
  return v;
}

// Every element of the two storages (whole buffers: an out-of-view write also shows).
template <class T>
void expect_storage_near(const Tensor& got, const Tensor& want, int64_t max_ulp, const std::string& what) {
  std::vector<T> g = copy_out<T>(got), w = copy_out<T>(want);
  ASSERT_EQ(g.size(), w.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    if (ulp_distance(g[i], w[i]) > max_ulp) {
      ++bad;
      ADD_FAILURE() << what << ": element " << i << " got " << static_cast<double>(static_cast<zae::acc_t<T>>(g[i]))
                    << ", CPU twin " << static_cast<double>(static_cast<zae::acc_t<T>>(w[i]));
    }
  }
}

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// A tensor of `shape` with values from `gen` (double), dtype dt.
Tensor filled(const Shape& shape, DType dt, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(zae::shape_numel(shape)));
  for (double& x : v) x = zae::is_floating(dt) ? u(rng) : std::floor(u(rng));
  if (dt == DType::bool_)
    for (double& x : v) x = x > (lo + hi) / 2 ? 1.0 : 0.0;
  return zae::tensor(v, shape, {.dtype = dt});
}

// Input layouts: the view an op reads (same values for every layout of one test).
enum class Layout { contiguous, transposed, broadcast, misaligned };
constexpr Layout kLayouts[] = {Layout::contiguous, Layout::transposed, Layout::broadcast, Layout::misaligned};
const char* name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::broadcast: return "broadcast";
    case Layout::misaligned: return "misaligned";
  }
  return "?";
}

// An input view of logical shape `shape` (2-D: rows x cols) in layout l.
Tensor make_view(const Shape& shape, Layout l, DType dt, uint64_t seed, double lo, double hi) {
  const int64_t rows = shape[0], cols = shape[1];
  switch (l) {
    case Layout::contiguous: return filled(shape, dt, seed, lo, hi);
    case Layout::transposed: return filled({cols, rows}, dt, seed, lo, hi).t();
    case Layout::broadcast: return filled({1, cols}, dt, seed, lo, hi).expand(shape);
    case Layout::misaligned: return filled({rows * cols + 1}, dt, seed, lo, hi).slice(0, 1, rows * cols + 1).view(shape);
  }
  return Tensor();
}

const std::vector<Shape> kShapes = {{1, 1}, {1, 7}, {3, 341}, {37, 111}};
const std::vector<Grid> kGrids = {{.threads = 256}, {.threads = 37, .limit = 500}, {.threads = 1, .limit = 7}};

// ---- unary -----------------------------------------------------------------------------

constexpr kc::UnaryKind kUnaryKinds[] = {
    kc::UnaryKind::neg,       kc::UnaryKind::abs,       kc::UnaryKind::exp,
    kc::UnaryKind::log,       kc::UnaryKind::sqrt,      kc::UnaryKind::rsqrt,
    kc::UnaryKind::sin,       kc::UnaryKind::cos,       kc::UnaryKind::tanh,
    kc::UnaryKind::sigmoid,   kc::UnaryKind::relu,      kc::UnaryKind::gelu,
    kc::UnaryKind::gelu_tanh, kc::UnaryKind::silu,      kc::UnaryKind::sign,
    kc::UnaryKind::gelu_grad, kc::UnaryKind::gelu_tanh_grad, kc::UnaryKind::silu_grad,
    kc::UnaryKind::sigmoid_grad_from_out, kc::UnaryKind::tanh_grad_from_out};

template <class T>
void check_unary(DType dt) {
  for (kc::UnaryKind op : kUnaryKinds) {
    const bool defined = zae::is_floating(dt) || kc::unary_supports_integers(op);
    const bool positive = op == kc::UnaryKind::log || op == kc::UnaryKind::sqrt || op == kc::UnaryKind::rsqrt;
    const double lo = positive ? 0.05 : dt == DType::uint8 ? 0 : -4, hi = dt == DType::uint8 ? 250 : 4;
    for (const Shape& shape : kShapes)
      for (Layout l : kLayouts)
        for (const Grid& g : kGrids) {
          Tensor a = make_view(shape, l, dt, 100 + static_cast<int>(op), lo, hi);
          Tensor want = zae::full(shape, 0.5, {.dtype = dt});
          Tensor got = zae::full(shape, 0.5, {.dtype = dt});
          auto it = zae::make_iter<2>({&want, &a}, "unary");
          const std::string what = "unary op " + std::to_string(static_cast<int>(op)) + " " +
                                   std::string(zae::dtype_name(dt)) + " " + zae::shape_str(shape) + " " + name(l) +
                                   " threads " + std::to_string(g.threads);
          const bool known = ks::visit_unary<T>(op, [&](const auto& f) { emulate(g, it, ptr<T>(got), f, ptr<T>(a)); });
          ASSERT_EQ(known, defined) << what;
          if (!defined) continue;
          kc::unary<T>(op, it, ptr<T>(want), ptr<T>(a));
          expect_storage_near<T>(got, want, 1, what);
        }
  }
}

TEST(SimtUnary, EveryOpAndDtypeMatchesTheCpuTwin) {
  check_unary<float>(DType::float32);
  check_unary<double>(DType::float64);
  check_unary<Half>(DType::float16);
  check_unary<BFloat16>(DType::bfloat16);
  check_unary<int32_t>(DType::int32);
  check_unary<int64_t>(DType::int64);
  check_unary<uint8_t>(DType::uint8);
}

TEST(SimtUnary, InPlaceOnTheSameView) {
  for (const Grid& g : kGrids) {
    Tensor a = filled({5, 203}, DType::float32, 3, -2, 2);
    Tensor want = a.clone();
    auto it = zae::make_iter<2>({&want, &want}, "unary");
    kc::unary<float>(kc::UnaryKind::tanh, it, ptr<float>(want), ptr<float>(want));
    ks::visit_unary<float>(kc::UnaryKind::tanh, [&](const auto& f) { emulate(g, it, ptr<float>(a), f, ptr<float>(a)); });
    expect_storage_near<float>(a, want, 1, "in-place tanh");
  }
}

// ---- binary / compare / where ------------------------------------------------------------

constexpr kc::BinaryKind kBinaryKinds[] = {kc::BinaryKind::add,     kc::BinaryKind::sub,     kc::BinaryKind::mul,
                                           kc::BinaryKind::div,     kc::BinaryKind::maximum, kc::BinaryKind::minimum,
                                           kc::BinaryKind::pow};
constexpr kc::CompareKind kCompareKinds[] = {kc::CompareKind::eq, kc::CompareKind::ne, kc::CompareKind::lt,
                                             kc::CompareKind::le, kc::CompareKind::gt, kc::CompareKind::ge};

template <class T>
void check_binary(DType dt) {
  using A = zae::acc_t<T>;
  const bool fl = zae::is_floating(dt);
  for (kc::BinaryKind op : kBinaryKinds) {
    const bool defined = fl || op != kc::BinaryKind::div;
    const bool is_pow = op == kc::BinaryKind::pow;
    const double lo = is_pow ? (fl ? 0.1 : 0) : dt == DType::uint8 ? 0 : -20, hi = is_pow ? (fl ? 3 : 4) : 20;
    for (A alpha : {A(1), fl ? A(2.5) : A(3)})
      for (const Shape& shape : kShapes)
        for (Layout la : {Layout::contiguous, Layout::transposed, Layout::misaligned})
          for (Layout lb : kLayouts) {
            const Grid& g = kGrids[(static_cast<size_t>(la) + static_cast<size_t>(lb)) % 3];
            Tensor a = make_view(shape, la, dt, 200 + static_cast<int>(op), lo, hi);
            Tensor b = make_view(shape, lb, dt, 300 + static_cast<int>(op), lo, hi);
            if (lb == Layout::broadcast && shape[1] > 1) b = b.slice(1, 0, 1).expand(shape);  // one scalar
            Tensor want = zae::full(shape, 0.5, {.dtype = dt});
            Tensor got = zae::full(shape, 0.5, {.dtype = dt});
            auto it = zae::make_iter<3>({&want, &a, &b}, "binary");
            const std::string what = "binary op " + std::to_string(static_cast<int>(op)) + " " +
                                     std::string(zae::dtype_name(dt)) + " alpha " +
                                     std::to_string(static_cast<double>(alpha)) + " " + zae::shape_str(shape) + " " +
                                     name(la) + "/" + name(lb);
            const bool known = ks::visit_binary<T>(
                op, alpha, [&](const auto& f) { emulate(g, it, ptr<T>(got), f, ptr<T>(a), ptr<T>(b)); });
            ASSERT_EQ(known, defined) << what;
            if (!defined) continue;
            kc::binary<T>(op, it, ptr<T>(want), ptr<T>(a), ptr<T>(b), alpha);
            expect_storage_near<T>(got, want, 1, what);
          }
  }
}

TEST(SimtBinary, EveryOpAndDtypeMatchesTheCpuTwin) {
  check_binary<float>(DType::float32);
  check_binary<double>(DType::float64);
  check_binary<Half>(DType::float16);
  check_binary<BFloat16>(DType::bfloat16);
  check_binary<int32_t>(DType::int32);
  check_binary<int64_t>(DType::int64);
  check_binary<uint8_t>(DType::uint8);
}

template <class T>
void check_compare_and_where(DType dt) {
  const double lo = dt == DType::uint8 ? 0 : -3, hi = 3;
  for (const Shape& shape : kShapes)
    for (Layout la : kLayouts)
      for (Layout lb : {Layout::contiguous, Layout::transposed, Layout::broadcast}) {
        const Grid& g = kGrids[(static_cast<size_t>(la) * 3 + static_cast<size_t>(lb)) % 3];
        // Integer-valued floats: many ties, so eq/ne/le/ge see equal pairs.
        Tensor a = make_view(shape, la, dt, 5, lo, hi);
        Tensor b = make_view(shape, lb, dt, 6, lo, hi);
        if (zae::is_floating(dt)) {
          a = a.to(DType::float64).to(DType::int64).to(dt);
          b = b.to(DType::float64).to(DType::int64).to(dt);
        }
        for (kc::CompareKind op : kCompareKinds) {
          Tensor want = zae::full(shape, 1, {.dtype = DType::bool_});
          Tensor got = zae::full(shape, 1, {.dtype = DType::bool_});
          auto it = zae::make_iter<3>({&want, &a, &b}, "compare");
          ASSERT_TRUE(ks::visit_compare<T>(
              op, [&](const auto& f) { emulate(g, it, ptr<bool>(got), f, ptr<T>(a), ptr<T>(b)); }));
          kc::compare<T>(op, it, ptr<bool>(want), ptr<T>(a), ptr<T>(b));
          EXPECT_EQ(copy_out<uint8_t>(got), copy_out<uint8_t>(want))
              << "compare op " << static_cast<int>(op) << " " << dt << " " << zae::shape_str(shape) << " " << name(la)
              << "/" << name(lb);
        }
        Tensor cond = make_view(shape, lb, DType::bool_, 8, 0, 1);
        Tensor want = zae::full(shape, 0.5, {.dtype = dt});
        Tensor got = zae::full(shape, 0.5, {.dtype = dt});
        auto it = zae::make_iter<4>({&want, &cond, &a, &b}, "where");
        using U = ks::bits_t<T>;
        emulate(g, it, ptr<U>(got), ks::WhereFn<U>{}, ptr<bool>(cond), ptr<U>(a), ptr<U>(b));
        kc::where<T>(it, ptr<T>(want), ptr<bool>(cond), ptr<T>(a), ptr<T>(b));
        EXPECT_EQ(copy_out<U>(got), copy_out<U>(want))
            << "where " << dt << " " << zae::shape_str(shape) << " " << name(la) << "/" << name(lb);
      }
}

TEST(SimtCompareWhere, EveryDtypeMatchesTheCpuTwinExactly) {
  check_compare_and_where<float>(DType::float32);
  check_compare_and_where<double>(DType::float64);
  check_compare_and_where<Half>(DType::float16);
  check_compare_and_where<BFloat16>(DType::bfloat16);
  check_compare_and_where<int32_t>(DType::int32);
  check_compare_and_where<int64_t>(DType::int64);
  check_compare_and_where<uint8_t>(DType::uint8);
  check_compare_and_where<bool>(DType::bool_);
}

// ---- cast and fill ------------------------------------------------------------------------

template <class Dst, class Src>
void check_cast(DType dd, DType sd) {
  // Values every conversion defines: non-negative below 256 into uint8, else [-100, 200].
  const double lo = dd == DType::uint8 || sd == DType::uint8 ? 0 : -100, hi = 200.9;
  for (const Shape& shape : kShapes)
    for (Layout l : kLayouts) {
      const Grid& g = kGrids[static_cast<size_t>(l) % 3];
      Tensor src = make_view(shape, l, sd, 9, lo, hi);
      Tensor want = zae::zeros(shape, {.dtype = dd});
      Tensor got = zae::zeros(shape, {.dtype = dd});
      auto it = zae::make_iter<2>({&want, &src}, "copy");
      kc::copy_cast<Dst, Src>(it, ptr<Dst>(want), ptr<Src>(src));
      if constexpr (std::is_same_v<Dst, Src>) {
        using U = ks::bits_t<Dst>;
        emulate(g, it, ptr<U>(got), ks::CastFn<U, U>{}, ptr<U>(src));
      } else {
        emulate(g, it, ptr<Dst>(got), ks::CastFn<Dst, Src>{}, ptr<Src>(src));
      }
      using U = ks::bits_t<Dst>;
      EXPECT_EQ(copy_out<U>(got), copy_out<U>(want)) << "cast " << sd << " -> " << dd << " " << zae::shape_str(shape)
                                                     << " " << name(l);
    }
}

template <class Dst>
void check_cast_from_all(DType dd) {
  check_cast<Dst, float>(dd, DType::float32);
  check_cast<Dst, double>(dd, DType::float64);
  check_cast<Dst, Half>(dd, DType::float16);
  check_cast<Dst, BFloat16>(dd, DType::bfloat16);
  check_cast<Dst, int32_t>(dd, DType::int32);
  check_cast<Dst, int64_t>(dd, DType::int64);
  check_cast<Dst, uint8_t>(dd, DType::uint8);
  check_cast<Dst, bool>(dd, DType::bool_);
}

TEST(SimtCast, EveryDtypePairMatchesTheCpuTwinBitForBit) {
  check_cast_from_all<float>(DType::float32);
  check_cast_from_all<double>(DType::float64);
  check_cast_from_all<Half>(DType::float16);
  check_cast_from_all<BFloat16>(DType::bfloat16);
  check_cast_from_all<int32_t>(DType::int32);
  check_cast_from_all<int64_t>(DType::int64);
  check_cast_from_all<uint8_t>(DType::uint8);
  check_cast_from_all<bool>(DType::bool_);
}

TEST(SimtFill, StridedViewsGetTheValueAndNothingElse) {
  for (const Grid& g : kGrids) {
    Tensor base = zae::zeros({9, 13}, {.dtype = DType::float16});
    Tensor view = base.slice(1, 1, 13, 3);  // (9, 4) at stride 3
    Tensor want = base.clone();
    auto it = zae::make_iter<1>({&view}, "fill");
    emulate(g, it, static_cast<uint16_t*>(view.raw_data()), ks::FillFn<uint16_t>{Half(-2.5f).bits});
    Tensor wview = want.slice(1, 1, 13, 3);
    auto wit = zae::make_iter<1>({&wview}, "fill");
    kc::fill<Half>(wit, ptr<Half>(wview), Half(-2.5f));
    EXPECT_EQ(copy_out<uint16_t>(base), copy_out<uint16_t>(want));
  }
}

// ---- random fills and dropout -------------------------------------------------------------

template <class T>
void check_random(DType dt) {
  for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 1023, 4099})
    for (int64_t threads : {1, 37, 512}) {
      const uint64_t seed = 0x1234 + static_cast<uint64_t>(n), offset = 17;
      std::vector<T> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
      auto check = [&](const char* what) {
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(T)), 0)
            << what << " " << dt << " n " << n << " threads " << threads;
      };
      kc::uniform<T>(want.data(), n, seed, offset, 0.0, 1.0);
      for (int64_t t = 0; t < threads; ++t) ks::uniform_body<T>(t, threads, got.data(), n, seed, offset, 0.0, 1.0);
      check("uniform");
      kc::uniform<T>(want.data(), n, seed, offset, -3.0, 5.0);
      for (int64_t t = 0; t < threads; ++t) ks::uniform_body<T>(t, threads, got.data(), n, seed, offset, -3.0, 5.0);
      check("uniform [-3, 5)");
      kc::normal<T>(want.data(), n, seed, offset, 0.0, 1.0);
      for (int64_t t = 0; t < threads; ++t) ks::normal_body<T>(t, threads, got.data(), n, seed, offset, 0.0, 1.0);
      check("normal");
      kc::randint<T>(want.data(), n, seed, offset, -5, 9);
      for (int64_t t = 0; t < threads; ++t) ks::randint_body<T>(t, threads, got.data(), n, seed, offset, -5, 9);
      check("randint");
    }
}

TEST(SimtRandom, FillsMatchTheCpuTwinBitForBit) {
  check_random<float>(DType::float32);
  check_random<double>(DType::float64);
  check_random<Half>(DType::float16);
  check_random<BFloat16>(DType::bfloat16);
  // randint also fills integer dtypes.
  std::vector<int64_t> want(1001), got(1001);
  kc::randint<int64_t>(want.data(), 1001, 5, 3, -1000000007, 1000000009);
  for (int64_t t = 0; t < 64; ++t) ks::randint_body<int64_t>(t, 64, got.data(), 1001, 5, 3, -1000000007, 1000000009);
  EXPECT_EQ(got, want);
}

template <class T>
void check_dropout(DType dt) {
  for (const Shape& shape : kShapes)
    for (Layout l : {Layout::contiguous, Layout::transposed, Layout::misaligned})
      for (const Grid& g : kGrids) {
        Tensor x = make_view(shape, l, dt, 12, -2, 2);
        Tensor out_want = zae::zeros(shape, {.dtype = dt}), out_got = zae::zeros(shape, {.dtype = dt});
        Tensor m_want = zae::zeros(shape, {.dtype = DType::bool_}), m_got = zae::zeros(shape, {.dtype = DType::bool_});
        const float p = 0.3f;
        const double scale = 1.0 / 0.7;
        const uint64_t seed = 99, offset = 5;
        auto it = zae::make_iter<3>({&out_want, &x, &m_want}, "dropout");
        kc::dropout_forward<T>(it, ptr<T>(out_want), ptr<T>(x), ptr<bool>(m_want), p, scale, seed, offset);
        const auto s = static_cast<zae::acc_t<T>>(scale);
        ks::for_each_32bit_chunk<3>(
            it,
            [&](const StridedIter<3>& chunk, const std::array<int64_t, 3>& base, int64_t linear_begin) {
              const auto oc = ks::OffsetCalc<3>::from(chunk);
              for (int64_t t = 0; t < g.threads; ++t)
                ks::dropout_body<T>(t, g.threads, oc, static_cast<uint32_t>(chunk.numel()), linear_begin,
                                    ptr<T>(out_got) + base[0], ptr<T>(x) + base[1], ptr<bool>(m_got) + base[2], p, s,
                                    seed, offset);
            },
            g.limit);
        const std::string what =
            "dropout " + std::string(zae::dtype_name(dt)) + " " + zae::shape_str(shape) + " " + name(l);
        EXPECT_EQ(copy_out<uint8_t>(m_got), copy_out<uint8_t>(m_want)) << what;
        using U = ks::bits_t<T>;
        EXPECT_EQ(copy_out<U>(out_got), copy_out<U>(out_want)) << what;

        Tensor g_in = make_view(shape, l, dt, 13, -1, 1);
        Tensor dx_want = zae::zeros(shape, {.dtype = dt}), dx_got = zae::zeros(shape, {.dtype = dt});
        auto bit = zae::make_iter<3>({&dx_want, &g_in, &m_want}, "dropout backward");
        kc::dropout_backward<T>(bit, ptr<T>(dx_want), ptr<T>(g_in), ptr<bool>(m_want), scale);
        emulate(g, bit, ptr<T>(dx_got), ks::DropoutBackwardFn<T>{s}, ptr<T>(g_in), ptr<bool>(m_want));
        EXPECT_EQ(copy_out<U>(dx_got), copy_out<U>(dx_want)) << what << " backward";
      }
}

TEST(SimtDropout, MaskAndValuesMatchTheCpuTwinBitForBit) {
  check_dropout<float>(DType::float32);
  check_dropout<double>(DType::float64);
  check_dropout<Half>(DType::float16);
  check_dropout<BFloat16>(DType::bfloat16);
}

}  // namespace
