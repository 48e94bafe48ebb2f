// Tests for kernels/cpu/gemm: the CPU strided-batched GEMM against a naive float64
// triple loop, for float, double, Half and BFloat16.
//
// Invariants checked: every trans combination; odd and unit sizes; row strides wider
// than the row (sub-matrix views) whose padding must stay untouched; batch strides
// with gaps and with 0 (broadcast); alpha/beta combinations; beta == 0 never reads C
// (NaN-poisoned C); alpha == 0 and k == 0 never read A/B; empty problems touch nothing;
// bad sizes throw.
#include "kernels/cpu/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using zae::BFloat16;
using zae::Half;
using zae::kernels::cpu::gemm;

template <class T>
double to_double(T x) {
  return static_cast<double>(static_cast<zae::acc_t<T>>(x));
}
template <class T>
T from_double(double x) {
  return T(static_cast<zae::acc_t<T>>(x));
}

// Relative tolerance per dtype, measured against sum(|alpha * a * b|) + |beta * c|.
template <class T>
double tolerance();
template <>
double tolerance<float>() {
  return 1e-5;
}
template <>
double tolerance<double>() {
  return 1e-12;
}
template <>
double tolerance<Half>() {
  return 1e-2;
}
template <>
double tolerance<BFloat16>() {
  return 1e-2;
}

/// One GEMM problem. Padding widens the row strides; gap separates batch entries;
/// broadcast_* sets that operand's batch stride to 0.
struct Problem {
  bool trans_a = false, trans_b = false;
  int64_t m = 1, n = 1, k = 1, batch = 1;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0, gap = 0;
  bool broadcast_a = false, broadcast_b = false;
  float alpha = 1.0f, beta = 0.0f;
  bool poison_c = false;   // NaN in C's valid region (only meaningful with beta == 0)
  bool poison_ab = false;  // NaN in A and B (only meaningful when they are not read)

  std::string describe() const {
    std::ostringstream os;
    os << "ta=" << trans_a << " tb=" << trans_b << " m=" << m << " n=" << n << " k=" << k
       << " batch=" << batch << " pad=(" << pad_a << "," << pad_b << "," << pad_c
       << ") gap=" << gap << " bcast=(" << broadcast_a << "," << broadcast_b
       << ") alpha=" << alpha << " beta=" << beta << " poison_c=" << poison_c;
    return os.str();
  }
};

/// A stored (rows, cols) operand repeated over the batch, with row stride ld.
struct Layout {
  int64_t rows, cols, ld, stride, size;
};
Layout make_layout(int64_t rows, int64_t cols, int64_t pad, int64_t gap, int64_t batch,
                   bool broadcast) {
  Layout l{rows, cols, cols + pad, 0, 0};
  l.stride = broadcast ? 0 : rows * l.ld + gap;
  l.size = std::max<int64_t>(1, (batch - 1) * l.stride + rows * l.ld);
  return l;
}

/// Runs gemm<T> on random data and compares with a float64 triple loop. Also checks
/// that every element of C outside the (m, n) views is left exactly as it was.
template <class T>
void run_and_check(const Problem& p, uint32_t seed = 1234) {
  SCOPED_TRACE(p.describe());
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const double nan = std::numeric_limits<double>::quiet_NaN();

  const Layout la = make_layout(p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p.pad_a, p.gap,
                                p.batch, p.broadcast_a);
  const Layout lb = make_layout(p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p.pad_b, p.gap,
                                p.batch, p.broadcast_b);
  const Layout lc = make_layout(p.m, p.n, p.pad_c, p.gap, p.batch, false);

  std::vector<T> a(la.size), b(lb.size), c(lc.size);
  for (auto& x : a) x = from_double<T>(p.poison_ab ? nan : dist(rng));
  for (auto& x : b) x = from_double<T>(p.poison_ab ? nan : dist(rng));
  for (auto& x : c) x = from_double<T>(dist(rng));
  if (p.poison_c) {
    for (int64_t bi = 0; bi < p.batch; ++bi)
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j) c[bi * lc.stride + i * lc.ld + j] = from_double<T>(nan);
  }
  const std::vector<T> c0 = c;

  gemm<T>(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.data(), la.ld, la.stride, b.data(),
          lb.ld, lb.stride, p.beta, c.data(), lc.ld, lc.stride, p.batch);

  // Expected C, and which elements of the C buffer lie inside some (m, n) view.
  std::vector<char> inside(c.size(), 0);
  int64_t bad = 0;
  std::string first_bad;
  const double tol = tolerance<T>();
  for (int64_t bi = 0; bi < p.batch; ++bi) {
    const T* a_b = a.data() + bi * la.stride;
    const T* b_b = b.data() + bi * lb.stride;
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t j = 0; j < p.n; ++j) {
        double acc = 0.0, mag = 0.0;
        for (int64_t l = 0; l < p.k; ++l) {
          const double av = to_double(p.trans_a ? a_b[l * la.ld + i] : a_b[i * la.ld + l]);
          const double bv = to_double(p.trans_b ? b_b[j * lb.ld + l] : b_b[l * lb.ld + j]);
          acc += av * bv;
          mag += std::fabs(av * bv);
        }
        const int64_t idx = bi * lc.stride + i * lc.ld + j;
        inside[idx] = 1;
        double want = p.alpha == 0.0f ? 0.0 : double(p.alpha) * acc;
        mag = p.alpha == 0.0f ? 0.0 : std::fabs(double(p.alpha)) * mag;
        if (p.beta != 0.0f) {
          want += double(p.beta) * to_double(c0[idx]);
          mag += std::fabs(double(p.beta) * to_double(c0[idx]));
        }
        const double got = to_double(c[idx]);
        const double err = std::fabs(got - want);
        if (!std::isfinite(got) || err > tol * mag + 1e-30) {
          if (bad++ == 0) {
            std::ostringstream os;
            os << "batch " << bi << " C(" << i << "," << j << ") = " << got << ", want " << want
               << " (err " << err << ", bound " << tol * mag << ")";
            first_bad = os.str();
          }
        }
      }
    }
  }
  EXPECT_EQ(bad, 0) << "mismatches; first: " << first_bad;

  int64_t touched = 0;
  for (size_t idx = 0; idx < c.size(); ++idx) {
    if (!inside[idx] && std::memcmp(&c[idx], &c0[idx], sizeof(T)) != 0) ++touched;
  }
  EXPECT_EQ(touched, 0) << "elements of C outside the (m, n) views were written";
}

template <class T>
class GemmTest : public ::testing::Test {};
using GemmTypes = ::testing::Types<float, double, Half, BFloat16>;
TYPED_TEST_SUITE(GemmTest, GemmTypes);

constexpr int64_t kSizes[] = {1, 7, 33, 65};

// Every trans combination over every (m, n, k) in kSizes^3, contiguous, C = A B.
TYPED_TEST(GemmTest, AllTransCombinationsAndShapes) {
  for (int t = 0; t < 4; ++t) {
    for (int64_t m : kSizes) {
      for (int64_t n : kSizes) {
        for (int64_t k : kSizes) {
          Problem p;
          p.trans_a = t & 1;
          p.trans_b = t & 2;
          p.m = m, p.n = n, p.k = k;
          run_and_check<TypeParam>(p);
        }
      }
    }
  }
}

// Sub-matrix views: row strides wider than the rows; the padding must stay untouched.
TYPED_TEST(GemmTest, PaddedRowStrides) {
  for (int t = 0; t < 4; ++t) {
    Problem p;
    p.trans_a = t & 1;
    p.trans_b = t & 2;
    p.m = 33, p.n = 7, p.k = 65;
    p.pad_a = 3, p.pad_b = 5, p.pad_c = 2;
    p.alpha = 0.75f, p.beta = -1.25f;
    run_and_check<TypeParam>(p);
  }
}

// Batch strides with gaps between entries, and broadcast (stride 0) operands.
TYPED_TEST(GemmTest, StridedBatch) {
  for (int t = 0; t < 4; ++t) {
    for (int bcast = 0; bcast < 3; ++bcast) {
      Problem p;
      p.trans_a = t & 1;
      p.trans_b = t & 2;
      p.m = 7, p.n = 33, p.k = 65, p.batch = 5;
      p.pad_a = 1, p.pad_b = 2, p.pad_c = 3, p.gap = 11;
      p.broadcast_a = bcast == 1;
      p.broadcast_b = bcast == 2;
      p.alpha = 1.5f, p.beta = 0.5f;
      run_and_check<TypeParam>(p);
    }
  }
}

TYPED_TEST(GemmTest, AlphaBetaCombinations) {
  for (float alpha : {1.0f, -2.0f, 0.5f}) {
    for (float beta : {0.0f, 1.0f, -0.5f, 2.0f}) {
      Problem p;
      p.trans_a = true;
      p.m = 65, p.n = 33, p.k = 7, p.batch = 2;
      p.alpha = alpha, p.beta = beta;
      run_and_check<TypeParam>(p);
    }
  }
}

// beta == 0: C is write-only, so NaN in it must not reach the result.
TYPED_TEST(GemmTest, BetaZeroIgnoresNaNInC) {
  for (int t = 0; t < 4; ++t) {
    for (int64_t size : {1, 7, 65}) {
      Problem p;
      p.trans_a = t & 1;
      p.trans_b = t & 2;
      p.m = size, p.n = size + 2, p.k = 33, p.batch = 3;
      p.pad_c = 1, p.gap = 4;
      p.alpha = 1.25f, p.beta = 0.0f;
      p.poison_c = true;
      run_and_check<TypeParam>(p);
    }
  }
}

// alpha == 0: A and B are not read (NaN there does not matter); C = beta * C.
TYPED_TEST(GemmTest, AlphaZeroDoesNotReadAB) {
  for (float beta : {0.0f, 1.0f, 3.0f}) {
    Problem p;
    p.m = 7, p.n = 33, p.k = 65, p.batch = 2, p.pad_c = 2;
    p.alpha = 0.0f, p.beta = beta;
    p.poison_ab = true;
    p.poison_c = beta == 0.0f;
    run_and_check<TypeParam>(p);
  }
}

// k == 0: C = beta * C, and A/B may be null with zero row strides.
TYPED_TEST(GemmTest, EmptyInnerDimension) {
  using T = TypeParam;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (float beta : {0.0f, 1.0f, -2.0f}) {
    std::vector<T> c(2 * 3 * 4);
    for (size_t i = 0; i < c.size(); ++i) {
      c[i] = from_double<T>(beta == 0.0f ? nan : 0.25 * double(i));
    }
    const std::vector<T> c0 = c;
    gemm<T>(false, true, 3, 4, 0, 1.0f, nullptr, 0, 0, nullptr, 0, 0, beta, c.data(), 4, 12, 2);
    for (size_t i = 0; i < c.size(); ++i) {
      const double want = beta == 0.0f ? 0.0 : double(beta) * to_double(c0[i]);
      EXPECT_NEAR(to_double(c[i]), want, 1e-2 * std::fabs(want)) << "beta=" << beta << " i=" << i;
    }
  }
  // The general harness too, with padding and a batch gap.
  Problem p;
  p.m = 7, p.n = 5, p.k = 0, p.batch = 3, p.pad_c = 2, p.gap = 3, p.alpha = 2.0f, p.beta = 0.5f;
  run_and_check<T>(p);
}

// m == 0, n == 0 or batch == 0: nothing is read or written, null pointers are fine.
TYPED_TEST(GemmTest, EmptyOutputIsANoOp) {
  using T = TypeParam;
  EXPECT_NO_THROW(gemm<T>(false, false, 0, 5, 3, 1.0f, nullptr, 3, 0, nullptr, 5, 0, 0.0f,
                          nullptr, 5, 0, 4));
  EXPECT_NO_THROW(gemm<T>(true, true, 5, 0, 3, 1.0f, nullptr, 5, 0, nullptr, 3, 0, 1.0f,
                          nullptr, 0, 0, 4));
  EXPECT_NO_THROW(gemm<T>(false, false, 5, 5, 3, 1.0f, nullptr, 3, 0, nullptr, 5, 0, 1.0f,
                          nullptr, 5, 0, 0));
}

TYPED_TEST(GemmTest, BadArgumentsThrow) {
  using T = TypeParam;
  std::vector<T> a(64), b(64), c(64);
  // Negative size.
  EXPECT_THROW(gemm<T>(false, false, -1, 2, 2, 1.0f, a.data(), 2, 0, b.data(), 2, 0, 0.0f,
                       c.data(), 2, 0, 1),
               std::invalid_argument);
  // lda smaller than the stored A's row (k = 4 columns).
  EXPECT_THROW(gemm<T>(false, false, 2, 2, 4, 1.0f, a.data(), 3, 0, b.data(), 2, 0, 0.0f,
                       c.data(), 2, 0, 1),
               std::invalid_argument);
  // Transposed A is stored (k, m) = (4, 3): lda must be >= 3.
  EXPECT_THROW(gemm<T>(true, false, 3, 2, 4, 1.0f, a.data(), 2, 0, b.data(), 2, 0, 0.0f,
                       c.data(), 2, 0, 1),
               std::invalid_argument);
  // ldc smaller than n.
  EXPECT_THROW(gemm<T>(false, false, 2, 3, 2, 1.0f, a.data(), 2, 0, b.data(), 3, 0, 0.0f,
                       c.data(), 2, 0, 1),
               std::invalid_argument);
}

// Sizes past the blocking/threading thresholds of both backends.
TEST(GemmLarge, FloatAndDoubleBlockedSizes) {
  for (int t = 0; t < 4; ++t) {
    Problem p;
    p.trans_a = t & 1;
    p.trans_b = t & 2;
    p.m = 257, p.n = 131, p.k = 301, p.pad_a = 3, p.pad_c = 1;
    p.alpha = 1.0f, p.beta = 0.0f, p.poison_c = true;
    run_and_check<float>(p);
    p.beta = 0.5f, p.poison_c = false;
    run_and_check<double>(p);
  }
}

TEST(GemmBackend, NameIsKnown) {
  const std::string name = zae::kernels::cpu::gemm_backend_name();
  EXPECT_TRUE(name == "openblas" || name == "eigen") << name;
}

}  // namespace
