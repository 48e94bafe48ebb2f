// kernels/portable_math.h: the log and sin/cos that Box-Muller (philox::normal) uses on
// the host and on CUDA devices. Checked against long double references: within 2 units
// in the last place everywhere we probe (every power-of-two boundary, the sqrt(2)
// switch, both ends of the range, quadrant boundaries and a million random words), and
// exact where the answer is exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/philox.h"
#include "kernels/portable_math.h"

namespace {

namespace pm = zae::portable;

// |got - want| in units in the last place of the double nearest to want.
double ulps(double got, long double want) {
  const double w = static_cast<double>(want);
  if (w == 0) return got == 0 ? 0.0 : 1e300;
  const double unit = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / unit);
}

long double ref_log_fraction(uint64_t x) {  // log(x / 2^32), accurate near x = 2^32 too
  return std::log1p((static_cast<long double>(x) - 4294967296.0L) / 4294967296.0L);
}

TEST(PortableMath, LogOfWordFractionWithinTwoUlps) {
  std::vector<uint64_t> xs;
  for (uint64_t x = 1; x < 5000; ++x) xs.push_back(x);
  for (int e = 1; e <= 32; ++e)
    for (int64_t d = -3; d <= 3; ++d) {
      const int64_t x = (int64_t{1} << e) + d;
      if (x >= 1 && x <= (int64_t{1} << 32)) xs.push_back(static_cast<uint64_t>(x));
    }
  for (int e = 0; e < 32; ++e) {  // around m = sqrt(2), where the reduction switches
    const auto x = static_cast<uint64_t>(std::ldexp(1.4142135623730951, e));
    for (uint64_t d = 0; d < 3; ++d) xs.push_back(x + d);
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000000; ++i) xs.push_back((rng() >> 32) + 1);
  for (uint64_t x : xs) ASSERT_LE(ulps(pm::log_word_fraction(x), ref_log_fraction(x)), 2.0) << "x = " << x;
  EXPECT_EQ(pm::log_word_fraction(uint64_t{1} << 32), 0.0);
  EXPECT_EQ(pm::log_word_fraction(1), -32 * 0.6931471805599453) << "log(2^-32) = -32 ln 2 (one rounding)";
}

TEST(PortableMath, SinCosOfTurnsWithinTwoUlps) {
  std::vector<uint32_t> ws = {0u, 1u, 0xffffffffu, 1u << 29, (1u << 29) - 1, 1u << 30, 1u << 31, 3u << 30};
  for (uint32_t q = 0; q < 8; ++q)
    for (int d = -2; d <= 2; ++d) ws.push_back((q << 29) + static_cast<uint32_t>(d));
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000000; ++i) ws.push_back(static_cast<uint32_t>(rng()));
  const long double pi = 3.14159265358979323846264338327950288L;
  for (uint32_t w : ws) {
    double s, c;
    pm::sincos_turns(w, s, c);
    // Reference on the same exact reduction: angle = n quarter turns + r * pi / 2^31.
    const uint32_t n = ((w + (1u << 29)) >> 30) & 3u;
    const auto r = static_cast<int32_t>(w - (n << 30));
    const long double x = static_cast<long double>(r) * pi / 2147483648.0L;
    const long double sx = std::sin(x), cx = std::cos(x);
    const long double want_s = n == 0 ? sx : n == 1 ? cx : n == 2 ? -sx : -cx;
    const long double want_c = n == 0 ? cx : n == 1 ? -sx : n == 2 ? -cx : sx;
    ASSERT_LE(ulps(s, want_s), 2.0) << "sin, w = " << w;
    ASSERT_LE(ulps(c, want_c), 2.0) << "cos, w = " << w;
  }
  double s, c;
  pm::sincos_turns(0, s, c);
  EXPECT_EQ(s, 0.0);
  EXPECT_EQ(c, 1.0);
  pm::sincos_turns(1u << 30, s, c);  // a quarter turn
  EXPECT_EQ(s, 1.0);
  EXPECT_EQ(c, 0.0);
}

TEST(PortableMath, BoxMullerPairIsTheNormalDraw) {
  // philox::normal(i) for even / odd i is the cos / sin half of the pair of its block.
  for (uint64_t i = 0; i < 64; ++i) {
    const auto w = zae::philox::block(77, 3 + i / 4);
    const unsigned j = static_cast<unsigned>(i % 4) & ~1u;
    double z0, z1;
    zae::philox::box_muller(w.v[j], w.v[j + 1], z0, z1);
    EXPECT_EQ(zae::philox::normal(77, 3, i), i % 2 == 0 ? z0 : z1) << i;
    // r^2 = -2 log u1 and the angle's sin^2 + cos^2 = 1 within rounding.
    const double u1 = (static_cast<double>(w.v[j]) + 1.0) / 4294967296.0;
    EXPECT_NEAR(z0 * z0 + z1 * z1, -2.0 * std::log(u1), 1e-12 * (1.0 - 2.0 * std::log(u1))) << i;
  }
}

}  // namespace
