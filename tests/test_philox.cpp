// Philox4x32-10 known answers (Random123's kat_vectors) and the random factories
// built on it: stream layout, statistics, ranges, reproducibility from
// (seed, offset) and the Generator's offset bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "kernels/philox.h"

namespace {

using zae::DType;
using zae::Generator;
using zae::philox::U32x4;

void expect_words(const U32x4& got, const U32x4& want, const char* what) {
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(got.v[i], want.v[i]) << what << " word " << i << std::hex << ": got 0x" << got.v[i] << ", want 0x"
                                   << want.v[i];
}

// Known-answer vectors from Random123's kat_vectors ("philox4x32 10 ...").
TEST(Philox, KnownAnswerZeros) {
  U32x4 out = zae::philox::philox4x32_10(U32x4{{0, 0, 0, 0}}, 0u, 0u);
  expect_words(out, U32x4{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}, "ctr 0 key 0");
}

TEST(Philox, KnownAnswerAllOnes) {
  U32x4 out = zae::philox::philox4x32_10(U32x4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                                         0xffffffffu);
  expect_words(out, U32x4{{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}, "ctr ~0 key ~0");
}

TEST(Philox, KnownAnswerPi) {
  U32x4 out = zae::philox::philox4x32_10(U32x4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                                         0x299f31d0u);
  expect_words(out, U32x4{{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}, "ctr pi key pi");
}

TEST(Philox, BlockLayoutIsCounterLowHighThenKeyFromSeed) {
  const uint64_t seed = 0x0123456789abcdefull, blk = 0xfedcba9876543210ull;
  U32x4 direct = zae::philox::philox4x32_10(U32x4{{0x76543210u, 0xfedcba98u, 0u, 0u}}, 0x89abcdefu, 0x01234567u);
  expect_words(zae::philox::block(seed, blk), direct, "block()");
}

TEST(Philox, UnitConversionsStayInRange) {
  EXPECT_EQ(zae::philox::to_unit_float(0u), 0.0f);
  EXPECT_LT(zae::philox::to_unit_float(0xffffffffu), 1.0f);
  EXPECT_EQ(zae::philox::to_unit_double(0u, 0u), 0.0);
  EXPECT_LT(zae::philox::to_unit_double(0xffffffffu, 0xffffffffu), 1.0);
  EXPECT_EQ(zae::philox::blocks_for(0, 4), 0u);
  EXPECT_EQ(zae::philox::blocks_for(1, 4), 1u);
  EXPECT_EQ(zae::philox::blocks_for(8, 4), 2u);
  EXPECT_EQ(zae::philox::blocks_for(9, 4), 3u);
}

// ---- random factories ---------------------------------------------------------

struct Moments {
  double mean = 0, var = 0, lo = 0, hi = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  m.lo = *std::min_element(v.begin(), v.end());
  m.hi = *std::max_element(v.begin(), v.end());
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

constexpr int64_t kSamples = 1000000;

TEST(Rand, UniformStatisticsAndRangeForEveryFloatDType) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    Generator gen(2024);
    zae::Tensor x = zae::rand({1000, 1000}, {.dtype = dt}, &gen);
    ASSERT_EQ(x.dtype(), dt);
    ASSERT_EQ(x.shape(), (zae::Shape{1000, 1000}));
    Moments m = moments(x.to_vector<double>());
    // Standard error of the mean is 0.29 / 1000; the 16-bit dtypes quantise the values slightly.
    EXPECT_NEAR(m.mean, 0.5, 4e-3) << dt;
    EXPECT_NEAR(m.var, 1.0 / 12.0, 2e-3) << dt;
    EXPECT_GE(m.lo, 0.0) << dt;
    EXPECT_LT(m.hi, 1.0) << dt << ": rand must stay in [0, 1)";
    EXPECT_LT(m.lo, 1e-3) << dt;
    EXPECT_GT(m.hi, 0.99) << dt;
  }
}

TEST(Rand, NormalStatisticsForEveryFloatDType) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    Generator gen(7);
    zae::Tensor x = zae::randn({kSamples}, {.dtype = dt}, &gen);
    std::vector<double> v = x.to_vector<double>();
    Moments m = moments(v);
    EXPECT_NEAR(m.mean, 0.0, 5e-3) << dt;
    EXPECT_NEAR(m.var, 1.0, 1e-2) << dt;
    // Tails: P(|z| > 1) = 0.3173, P(|z| > 2) = 0.0455.
    double gt1 = 0, gt2 = 0, third = 0, fourth = 0;
    for (double z : v) {
      gt1 += std::fabs(z) > 1.0;
      gt2 += std::fabs(z) > 2.0;
      third += z * z * z;
      fourth += z * z * z * z;
      ASSERT_TRUE(std::isfinite(z));
    }
    EXPECT_NEAR(gt1 / kSamples, 0.3173, 3e-3) << dt;
    EXPECT_NEAR(gt2 / kSamples, 0.0455, 1.5e-3) << dt;
    EXPECT_NEAR(third / kSamples, 0.0, 2e-2) << dt;
    EXPECT_NEAR(fourth / kSamples, 3.0, 5e-2) << dt;
  }
}

TEST(Rand, RandintRangeAndUniformity) {
  Generator gen(99);
  zae::Tensor x = zae::randint(-3, 7, {kSamples}, {.dtype = DType::int64}, &gen);
  ASSERT_EQ(x.dtype(), DType::int64);
  std::vector<int64_t> v = x.to_vector<int64_t>();
  std::vector<int64_t> counts(10, 0);
  for (int64_t k : v) {
    ASSERT_GE(k, -3);
    ASSERT_LT(k, 7);
    ++counts[static_cast<size_t>(k + 3)];
  }
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c) / kSamples, 0.1, 3e-3);
  std::vector<double> vd(v.begin(), v.end());
  Moments m = moments(vd);
  EXPECT_NEAR(m.mean, 1.5, 1e-2);          // (low + high - 1) / 2
  EXPECT_NEAR(m.var, (100.0 - 1) / 12, 5e-2);  // (n^2 - 1) / 12 for n = 10 values

  // Other dtypes hold the same integers.
  for (DType dt : {DType::int32, DType::uint8, DType::float32, DType::float64}) {
    zae::Tensor y = zae::randint(0, 5, {10000}, {.dtype = dt}, &gen);
    ASSERT_EQ(y.dtype(), dt);
    std::set<double> seen;
    for (double k : y.to_vector<double>()) {
      ASSERT_EQ(k, std::floor(k)) << dt;
      ASSERT_GE(k, 0) << dt;
      ASSERT_LT(k, 5) << dt;
      seen.insert(k);
    }
    EXPECT_EQ(seen.size(), 5u) << dt;
  }
  // A single-value range.
  EXPECT_EQ(zae::randint(4, 5, {100}, {}, &gen).to_vector<int64_t>(), std::vector<int64_t>(100, 4));
  try {
    zae::randint(5, 5, {3}, {}, &gen);
    ADD_FAILURE() << "randint with low == high must fail";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find("5"), std::string::npos) << e.what();
  }
}

TEST(Rand, ValuesFollowThePhiloxStreamLayout) {
  Generator gen(0xabcdef, 17);
  zae::Tensor f = zae::rand({9}, {}, &gen);
  std::vector<float> fv = f.to_vector<float>();
  for (uint64_t i = 0; i < 9; ++i) EXPECT_EQ(fv[i], zae::philox::uniform_float(0xabcdef, 17, i)) << i;
  uint64_t off = gen.offset();
  zae::Tensor d = zae::rand({5}, {.dtype = DType::float64}, &gen);
  std::vector<double> dv = d.to_vector<double>();
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(dv[i], zae::philox::uniform_double(0xabcdef, off, i)) << i;
  off = gen.offset();
  zae::Tensor n = zae::randn({6}, {.dtype = DType::float64}, &gen);
  std::vector<double> nv = n.to_vector<double>();
  for (uint64_t i = 0; i < 6; ++i) EXPECT_EQ(nv[i], zae::philox::normal(0xabcdef, off, i)) << i;
}

TEST(Rand, SameSeedAndOffsetGiveIdenticalTensors) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    Generator a(42, 5), b(42, 5);
    EXPECT_EQ(zae::rand({33, 7}, {.dtype = dt}, &a).to_vector<double>(),
              zae::rand({33, 7}, {.dtype = dt}, &b).to_vector<double>())
        << dt;
    EXPECT_EQ(zae::randn({100}, {.dtype = dt}, &a).to_vector<double>(),
              zae::randn({100}, {.dtype = dt}, &b).to_vector<double>())
        << dt;
  }
  Generator a(42), b(43);
  EXPECT_NE(zae::rand({64}, {}, &a).to_vector<float>(), zae::rand({64}, {}, &b).to_vector<float>())
      << "different seeds must give different streams";
}

TEST(Rand, SuccessiveDrawsDiffer) {
  Generator gen(1);
  std::vector<float> first = zae::rand({100}, {}, &gen).to_vector<float>();
  std::vector<float> second = zae::rand({100}, {}, &gen).to_vector<float>();
  EXPECT_NE(first, second);
  // No overlap at all: element-wise every value differs (24-bit values collide with probability ~6e-6).
  int equal = 0;
  for (size_t i = 0; i < first.size(); ++i) equal += first[i] == second[i];
  EXPECT_EQ(equal, 0);
  std::vector<double> n1 = zae::randn({10}, {.dtype = DType::float64}, &gen).to_vector<double>();
  std::vector<double> n2 = zae::randn({10}, {.dtype = DType::float64}, &gen).to_vector<double>();
  EXPECT_NE(n1, n2);
}

TEST(Rand, OffsetAdvancesByTheBlocksConsumed) {
  Generator gen(3);
  EXPECT_EQ(gen.offset(), 0u);
  zae::rand({10}, {}, &gen);  // float: 4 per block -> 3 blocks
  EXPECT_EQ(gen.offset(), 3u);
  zae::rand({10}, {.dtype = DType::float64}, &gen);  // double: 2 per block -> 5 blocks
  EXPECT_EQ(gen.offset(), 8u);
  zae::rand({8}, {.dtype = DType::float16}, &gen);  // 2 blocks
  EXPECT_EQ(gen.offset(), 10u);
  zae::randn({10}, {}, &gen);  // 4 per block -> 3 blocks
  EXPECT_EQ(gen.offset(), 13u);
  zae::randn({3}, {.dtype = DType::float64}, &gen);  // 1 block
  EXPECT_EQ(gen.offset(), 14u);
  zae::randint(0, 10, {10}, {}, &gen);  // double draw: 2 per block -> 5 blocks
  EXPECT_EQ(gen.offset(), 19u);
  zae::rand({0}, {}, &gen);  // empty draw consumes nothing
  EXPECT_EQ(gen.offset(), 19u);
  EXPECT_EQ(gen.seed(), 3u);

  auto d = gen.reserve(4);
  EXPECT_EQ(d.seed, 3u);
  EXPECT_EQ(d.offset, 19u);
  EXPECT_EQ(gen.offset(), 23u);
}

TEST(Rand, ReplayFromASavedOffset) {
  Generator gen(11);
  zae::rand({50}, {}, &gen);
  uint64_t saved = gen.offset();
  std::vector<float> want = zae::rand({20}, {}, &gen).to_vector<float>();
  zae::rand({70}, {}, &gen);
  gen.set_offset(saved);
  EXPECT_EQ(zae::rand({20}, {}, &gen).to_vector<float>(), want);
}

TEST(Rand, ManualSeedResets) {
  Generator gen(5);
  std::vector<float> first = zae::rand({16}, {}, &gen).to_vector<float>();
  zae::rand({16}, {}, &gen);
  gen.manual_seed(5);
  EXPECT_EQ(gen.offset(), 0u);
  EXPECT_EQ(zae::rand({16}, {}, &gen).to_vector<float>(), first);

  // The default generator, through zae::manual_seed.
  zae::manual_seed(123);
  EXPECT_EQ(zae::default_generator().seed(), 123u);
  EXPECT_EQ(zae::default_generator().offset(), 0u);
  std::vector<float> d1 = zae::rand({16}).to_vector<float>();
  std::vector<double> n1 = zae::randn({5}, {.dtype = DType::float64}).to_vector<double>();
  EXPECT_GT(zae::default_generator().offset(), 0u);
  zae::manual_seed(123);
  EXPECT_EQ(zae::rand({16}).to_vector<float>(), d1);
  EXPECT_EQ(zae::randn({5}, {.dtype = DType::float64}).to_vector<double>(), n1);
  Generator same(123);
  EXPECT_EQ(zae::rand({16}, {}, &same).to_vector<float>(), d1);
}

TEST(Rand, LikeFactoriesAndOptions) {
  Generator gen(8);
  zae::Tensor base = zae::zeros({4, 5}, {.dtype = DType::float64});
  zae::Tensor r = zae::rand_like(base, &gen);
  EXPECT_EQ(r.shape(), base.shape());
  EXPECT_EQ(r.dtype(), DType::float64);
  zae::Tensor n = zae::randn_like(base, &gen);
  EXPECT_EQ(n.shape(), base.shape());
  EXPECT_EQ(n.dtype(), DType::float64);
  EXPECT_FALSE(n.requires_grad());
  zae::Tensor g = zae::randn({3}, {.requires_grad = true}, &gen);
  EXPECT_TRUE(g.requires_grad());
  EXPECT_TRUE(g.is_leaf());
  try {
    zae::rand({3}, {.dtype = DType::int32}, &gen);
    ADD_FAILURE() << "rand of int32 must fail";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rand"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int32"), std::string::npos) << e.what();
  }
}

}  // namespace
