// DType metadata, the Half / BFloat16 conversions (kernels/numeric.h) and
// Tensor.to(dtype). The 16-bit conversions are checked exhaustively over all
// 2^16 bit patterns and against a reference rounding computed in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/ops/factory.h"
#include "engine/tensor.h"
#include "kernels/numeric.h"

namespace {

using zae::BFloat16;
using zae::DType;
using zae::Half;

constexpr DType kAllDTypes[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                DType::int32,   DType::int64,   DType::uint8,    DType::bool_};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Exact value of a half bit pattern, decoded in double (NaN for NaN patterns).
double half_value_ref(uint16_t h) {
  int sign = (h >> 15) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  return sign * std::ldexp(1.0 + mant / 1024.0, exp - 15);
}

// Exact value of a bfloat16 bit pattern, decoded in double.
double bf16_value_ref(uint16_t h) {
  int sign = (h >> 15) ? -1 : 1;
  int exp = (h >> 7) & 0xff;
  int mant = h & 0x7f;
  if (exp == 0xff) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -133);
  return sign * std::ldexp(1.0 + mant / 128.0, exp - 127);
}

// Round |f| to a binary format with `digits` significand bits, minimum normal exponent
// `emin` (value 2^emin) and overflow threshold `overflow` (the first value that is inf),
// to nearest with ties to even. Computed in double, which holds every float exactly.
double round_ref(float f, int digits, int emin, double overflow) {
  if (std::isnan(f)) return std::numeric_limits<double>::quiet_NaN();
  double a = std::fabs(static_cast<double>(f));
  double r;
  if (std::isinf(a)) {
    r = HUGE_VAL;
  } else if (a == 0.0) {
    r = 0.0;
  } else {
    int e = std::max(std::ilogb(a), emin);          // exponent of the binade (subnormals share emin)
    double unit = std::ldexp(1.0, e - (digits - 1));  // spacing of representable values there
    double q = a / unit;                              // exact: power-of-two scaling
    double fl = std::floor(q);
    double rem = q - fl;
    double n = rem > 0.5 ? fl + 1 : rem < 0.5 ? fl : (std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1);
    r = n * unit;
    if (r >= overflow) r = HUGE_VAL;
  }
  return std::signbit(f) ? -r : r;
}
double half_round_ref(float f) { return round_ref(f, 11, -14, 65536.0); }
double bf16_round_ref(float f) { return round_ref(f, 8, -126, std::ldexp(1.0, 128)); }

void expect_same_value(double got, double want, float input, const char* what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << " of " << input << " (bits 0x" << std::hex << bits_of(input) << ")";
    return;
  }
  EXPECT_EQ(got, want) << what << " of " << input << " (bits 0x" << std::hex << bits_of(input) << ")";
  EXPECT_EQ(std::signbit(got), std::signbit(want)) << what << " sign of " << input;
}

// ---- Half -------------------------------------------------------------------

TEST(Half, DecodesEveryBitPatternExactly) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    double got = static_cast<float>(Half::from_bits(h));
    double want = half_value_ref(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << "pattern 0x" << std::hex << b;
    } else {
      ASSERT_EQ(got, want) << "pattern 0x" << std::hex << b;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << "pattern 0x" << std::hex << b;
    }
  }
}

TEST(Half, EveryBitPatternRoundTripsThroughFloat) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    float f = static_cast<float>(Half::from_bits(h));
    uint16_t back = Half(f).bits;
    bool is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    if (is_nan) {
      ASSERT_TRUE(std::isnan(f)) << "pattern 0x" << std::hex << b;
      ASSERT_EQ(back & 0x7c00u, 0x7c00u) << "NaN 0x" << std::hex << b << " came back as 0x" << back;
      ASSERT_NE(back & 0x3ffu, 0u) << "NaN 0x" << std::hex << b << " came back as 0x" << back;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << "NaN sign lost for 0x" << std::hex << b;
    } else {
      ASSERT_EQ(back, h) << "pattern 0x" << std::hex << b << " -> " << f << " -> 0x" << back;
    }
  }
}

TEST(Half, RoundsRandomFloatsLikeTheDoubleReference) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  // Exponents around the half range (2^-30 .. 2^17) are where all the cases are.
  std::uniform_int_distribution<uint32_t> exp_near(97, 144);
  std::uniform_int_distribution<uint32_t> mant(0, 0x7fffff);
  for (int i = 0; i < 1000000; ++i) {
    uint32_t u = (i % 2 == 0) ? any_bits(rng) : ((any_bits(rng) & 0x80000000u) | (exp_near(rng) << 23) | mant(rng));
    float f = float_of(u);
    expect_same_value(static_cast<float>(Half(f)), half_round_ref(f), f, "half(f)");
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(Half, EdgeCases) {
  struct Case {
    float in;
    uint16_t bits;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3c00},
      {-2.0f, 0xc000},
      {1.0f + 0x1p-11f, 0x3c00},        // tie between 1 and 1+2^-10: to even (1)
      {1.0f + 3 * 0x1p-11f, 0x3c02},    // tie between 1+2^-10 and 1+2^-9: to even (up)
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  // just above the tie: up
      {65504.0f, 0x7bff},               // largest finite half
      {65519.0f, 0x7bff},               // below the midpoint to 65536: stays finite
      {65520.0f, 0x7c00},               // the midpoint: ties to even overflows to inf
      {-65520.0f, 0xfc00},
      {1e10f, 0x7c00},
      {0x1p-14f, 0x0400},               // smallest normal
      {0x1p-14f - 0x1p-24f, 0x03ff},    // largest subnormal
      {0x1p-14f - 0x1p-25f, 0x0400},    // tie between largest subnormal and smallest normal: even
      {0x1p-24f, 0x0001},               // smallest subnormal
      {-0x1p-24f, 0x8001},
      {0x1p-25f, 0x0000},               // exactly half the smallest subnormal: tie to even 0
      {-0x1p-25f, 0x8000},
      {0x1p-25f * 1.0000001f, 0x0001},  // just above the tie: up
      {3 * 0x1p-25f, 0x0002},           // tie between 1 and 2 units: even (2)
      {5 * 0x1p-25f, 0x0002},           // tie between 2 and 3 units: even (2)
      {1e-30f, 0x0000},
      {std::numeric_limits<float>::denorm_min(), 0x0000},
      {std::numeric_limits<float>::infinity(), 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xfc00},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Half(c.in).bits, c.bits) << "half(" << c.in << ") bits 0x" << std::hex << Half(c.in).bits
                                       << ", want 0x" << c.bits;
    expect_same_value(static_cast<float>(Half(c.in)), half_round_ref(c.in), c.in, "half(f)");
  }
  Half nan(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(static_cast<float>(nan)));
  Half neg_nan(-std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(static_cast<float>(neg_nan)));
  // A float NaN whose payload sits only in the low mantissa bits must stay NaN.
  EXPECT_TRUE(std::isnan(static_cast<float>(Half(float_of(0x7f800001u)))));
}

// ---- BFloat16 ---------------------------------------------------------------

TEST(BFloat16, DecodesEveryBitPatternExactly) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    double got = static_cast<float>(BFloat16::from_bits(h));
    double want = bf16_value_ref(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << "pattern 0x" << std::hex << b;
    } else {
      ASSERT_EQ(got, want) << "pattern 0x" << std::hex << b;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << "pattern 0x" << std::hex << b;
    }
  }
}

TEST(BFloat16, EveryBitPatternRoundTripsThroughFloat) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    float f = static_cast<float>(BFloat16::from_bits(h));
    uint16_t back = BFloat16(f).bits;
    bool is_nan = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
    if (is_nan) {
      ASSERT_TRUE(std::isnan(f)) << "pattern 0x" << std::hex << b;
      ASSERT_EQ(back & 0x7f80u, 0x7f80u) << "NaN 0x" << std::hex << b << " came back as 0x" << back;
      ASSERT_NE(back & 0x7fu, 0u) << "NaN 0x" << std::hex << b << " came back as 0x" << back;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << "NaN sign lost for 0x" << std::hex << b;
    } else {
      ASSERT_EQ(back, h) << "pattern 0x" << std::hex << b << " -> " << f << " -> 0x" << back;
    }
  }
}

TEST(BFloat16, RoundsRandomFloatsLikeTheDoubleReference) {
  std::mt19937 rng(4321);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 1000000; ++i) {
    uint32_t u = any_bits(rng);
    if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    if (i % 4 == 2) u &= 0x807fffffu;                 // float subnormals
    if (i % 4 == 3) u |= 0x7f000000u;                 // near overflow
    float f = float_of(u);
    expect_same_value(static_cast<float>(BFloat16(f)), bf16_round_ref(f), f, "bf16(f)");
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(BFloat16, EdgeCases) {
  struct Case {
    float in;
    uint16_t bits;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3f80},
      {1.0f + 0x1p-8f, 0x3f80},                 // tie: to even (1)
      {1.0f + 3 * 0x1p-8f, 0x3f82},             // tie: to even (up)
      {1.0f + 0x1p-8f + 0x1p-20f, 0x3f81},      // above the tie
      {float_of(0x7f7fffffu), 0x7f80},          // FLT_MAX rounds to inf
      {float_of(0x7f7f7fffu), 0x7f7f},          // below the midpoint: largest finite bf16
      {float_of(0x7f7f8000u), 0x7f80},          // the midpoint to 2^128: ties to even = inf
      {std::numeric_limits<float>::denorm_min(), 0x0000},  // 2^-149, far below half of 2^-133
      {float_of(0x00008000u), 0x0000},          // exact tie at the subnormal scale: even 0
      {float_of(0x00018000u), 0x0002},          // tie between 1 and 2: even 2
      {float_of(0x00010000u), 0x0001},          // smallest bf16 subnormal
      {std::numeric_limits<float>::infinity(), 0x7f80},
      {-std::numeric_limits<float>::infinity(), 0xff80},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(BFloat16(c.in).bits, c.bits) << "bf16(" << c.in << ") bits 0x" << std::hex << BFloat16(c.in).bits
                                           << ", want 0x" << c.bits;
    expect_same_value(static_cast<float>(BFloat16(c.in)), bf16_round_ref(c.in), c.in, "bf16(f)");
  }
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(std::numeric_limits<float>::quiet_NaN()))));
  // NaNs whose payload is only in the low 16 bits must not collapse to inf.
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(float_of(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(float_of(0xff80ffffu)))));
}

TEST(AccType, SixteenBitFloatsComputeInFloat) {
  static_assert(std::is_same_v<zae::acc_t<Half>, float>);
  static_assert(std::is_same_v<zae::acc_t<BFloat16>, float>);
  static_assert(std::is_same_v<zae::acc_t<double>, double>);
  static_assert(std::is_same_v<zae::acc_t<int32_t>, int32_t>);
  static_assert(zae::is_floating_v<Half> && zae::is_floating_v<BFloat16> && !zae::is_floating_v<int64_t>);
  static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2);
}

// ---- DType metadata -----------------------------------------------------------

TEST(DType, NamesAndItemsizes) {
  struct Row {
    DType t;
    const char* name;
    size_t size;
    bool floating;
    bool integral;
  };
  const Row rows[] = {
      {DType::float32, "float32", 4, true, false},  {DType::float64, "float64", 8, true, false},
      {DType::bfloat16, "bfloat16", 2, true, false}, {DType::float16, "float16", 2, true, false},
      {DType::int32, "int32", 4, false, true},      {DType::int64, "int64", 8, false, true},
      {DType::uint8, "uint8", 1, false, true},      {DType::bool_, "bool", 1, false, false},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(zae::dtype_name(r.t), r.name);
    EXPECT_EQ(zae::itemsize(r.t), r.size) << r.name;
    EXPECT_EQ(zae::is_floating(r.t), r.floating) << r.name;
    EXPECT_EQ(zae::is_integral(r.t), r.integral) << r.name;
    std::ostringstream os;
    os << r.t;
    EXPECT_EQ(os.str(), r.name);
    EXPECT_EQ(zae::empty({3}, {.dtype = r.t}).element_size(), r.size) << r.name;
  }
  EXPECT_EQ(zae::dtype_of<float>(), DType::float32);
  EXPECT_EQ(zae::dtype_of<Half>(), DType::float16);
  EXPECT_EQ(zae::dtype_of<BFloat16>(), DType::bfloat16);
  EXPECT_EQ(zae::dtype_of<bool>(), DType::bool_);
  EXPECT_EQ(zae::dtype_of<uint8_t>(), DType::uint8);
}

TEST(DType, PromotionTableMatchesPyTorch) {
  using enum DType;
  // Row/column order: float32, float64, bfloat16, float16, int32, int64, uint8, bool.
  const DType table[8][8] = {
      /* float32  */ {float32, float64, float32, float32, float32, float32, float32, float32},
      /* float64  */ {float64, float64, float64, float64, float64, float64, float64, float64},
      /* bfloat16 */ {float32, float64, bfloat16, float32, bfloat16, bfloat16, bfloat16, bfloat16},
      /* float16  */ {float32, float64, float32, float16, float16, float16, float16, float16},
      /* int32    */ {float32, float64, bfloat16, float16, int32, int64, int32, int32},
      /* int64    */ {float32, float64, bfloat16, float16, int64, int64, int64, int64},
      /* uint8    */ {float32, float64, bfloat16, float16, int32, int64, uint8, uint8},
      /* bool     */ {float32, float64, bfloat16, float16, int32, int64, uint8, bool_},
  };
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ(zae::promote_types(kAllDTypes[i], kAllDTypes[j]), table[i][j])
          << kAllDTypes[i] << " with " << kAllDTypes[j];
}

TEST(DType, DispatchRejectsWithTheOpName) {
  try {
    zae::dispatch_floating(DType::int32, "my_op", [](auto) { return 0; });
    FAIL() << "expected an error";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_op"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(zae::dispatch_numeric(DType::bool_, "my_op", [](auto) { return 0; }), zae::Error);
  EXPECT_THROW(zae::dispatch_index(DType::float32, "my_op", [](auto) { return 0; }), zae::Error);
  EXPECT_EQ(zae::dispatch_index(DType::int32, "my_op", [](auto tag) {
              return static_cast<int>(sizeof(typename decltype(tag)::type));
            }),
            4);
}

// ---- Tensor.to(dtype) -------------------------------------------------------

TEST(TensorTo, RoundTripsBetweenAllDTypes) {
  // Values every dtype holds exactly (bool only 0/1).
  const std::vector<double> small = {0, 1, 2, 5, 100, 3};
  const std::vector<double> boolish = {0, 1, 1, 0, 1, 0};
  for (DType a : kAllDTypes) {
    for (DType b : kAllDTypes) {
      const auto& vals = (a == DType::bool_ || b == DType::bool_) ? boolish : small;
      zae::Tensor x = zae::tensor(vals, {2, 3}, {.dtype = a});
      ASSERT_EQ(x.dtype(), a);
      zae::Tensor y = x.to(b);
      ASSERT_EQ(y.dtype(), b);
      EXPECT_EQ(y.shape(), (zae::Shape{2, 3}));
      EXPECT_EQ(y.to_vector<double>(), vals) << a << " -> " << b;
      zae::Tensor z = y.to(a);
      EXPECT_EQ(z.dtype(), a);
      EXPECT_EQ(z.to_vector<double>(), vals) << a << " -> " << b << " -> " << a;
      if (a == b) {
        EXPECT_TRUE(y.is_same(x)) << "to(same dtype) returns the tensor itself";
      }
    }
  }
}

TEST(TensorTo, StoresTheExactBitsOfEachDType) {
  zae::Tensor x = zae::tensor({1.5, -2.0, 65504.0}, {3}, {.dtype = DType::float64});
  zae::Tensor h = x.to(DType::float16);
  const Half* hp = h.data<Half>();
  EXPECT_EQ(hp[0].bits, 0x3e00);
  EXPECT_EQ(hp[1].bits, 0xc000);
  EXPECT_EQ(hp[2].bits, 0x7bff);
  zae::Tensor bf = x.to(DType::bfloat16);
  const BFloat16* bp = bf.data<BFloat16>();
  EXPECT_EQ(bp[0].bits, 0x3fc0);
  EXPECT_EQ(bp[1].bits, 0xc000);
  EXPECT_EQ(bp[2].bits, 0x4780);  // 65504 rounds to 65536 in bfloat16
  EXPECT_THROW(h.data<float>(), zae::Error);
}

TEST(TensorTo, FloatToIntTruncatesTowardZero) {
  const std::vector<double> in = {-2.7, -0.5, 0.5, 2.7, 3.0, -3.0, 127.9};
  for (DType src : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    zae::Tensor x = zae::tensor(in, {7}, {.dtype = DType::float64}).to(src);
    std::vector<double> rounded_in = x.to_vector<double>();  // 16-bit sources hold nearby values
    for (DType dst : {DType::int32, DType::int64}) {
      std::vector<double> got = x.to(dst).to_vector<double>();
      for (size_t i = 0; i < in.size(); ++i)
        EXPECT_EQ(got[i], std::trunc(rounded_in[i])) << src << " -> " << dst << " of " << rounded_in[i];
    }
    // uint8 from non-negative values (negative -> uint8 is undefined in C++ and PyTorch alike).
    zae::Tensor pos = zae::tensor({0.5, 2.7, 3.0, 127.9, 200.2}, {5}, {.dtype = DType::float64}).to(src);
    std::vector<double> pos_in = pos.to_vector<double>();
    std::vector<double> got_u8 = pos.to(DType::uint8).to_vector<double>();
    for (size_t i = 0; i < pos_in.size(); ++i) EXPECT_EQ(got_u8[i], std::trunc(pos_in[i])) << src << " -> uint8";
  }
  std::vector<int64_t> i64 = zae::tensor(in, {7}, {.dtype = DType::float64}).to(DType::int64).to_vector<int64_t>();
  EXPECT_EQ(i64, (std::vector<int64_t>{-2, 0, 0, 2, 3, -3, 127}));
}

TEST(TensorTo, ToBoolIsNonzero) {
  const std::vector<double> in = {0.0, -0.0, 0.5, -2.0, 1e-30, std::numeric_limits<double>::quiet_NaN()};
  const std::vector<uint8_t> want = {0, 0, 1, 1, 1, 1};
  for (DType src : {DType::float32, DType::float64}) {
    zae::Tensor b = zae::tensor(in, {6}, {.dtype = DType::float64}).to(src).to(DType::bool_);
    ASSERT_EQ(b.dtype(), DType::bool_);
    const bool* p = b.data<bool>();
    for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(p[i], want[i] != 0) << src << " " << in[i];
  }
  // 16-bit floats: 1e-30 underflows to 0 in half but not in bfloat16.
  {
    zae::Tensor b = zae::tensor({0.0, -0.0, 0.5, -2.0}, {4}, {.dtype = DType::float16}).to(DType::bool_);
    EXPECT_EQ(b.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 1, 1}));
    zae::Tensor c = zae::tensor({0.0, -0.0, 1e-30, -2.0}, {4}, {.dtype = DType::bfloat16}).to(DType::bool_);
    EXPECT_EQ(c.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 1, 1}));
  }
  for (DType src : {DType::int32, DType::int64, DType::uint8}) {
    zae::Tensor b = zae::tensor({0, 3, 0, 1, 255}, {5}, {.dtype = src}).to(DType::bool_);
    EXPECT_EQ(b.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 0, 1, 1})) << src;
  }
  // bool -> numbers gives 0 / 1.
  zae::Tensor b = zae::tensor({0, 2, 0, -1}, {4}, {.dtype = DType::int32}).to(DType::bool_);
  EXPECT_EQ(b.to(DType::float32).to_vector<float>(), (std::vector<float>{0, 1, 0, 1}));
}

TEST(TensorTo, NonContiguousSourceKeepsLogicalOrder) {
  zae::Tensor x = zae::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::float64});
  zae::Tensor xt = x.t();
  ASSERT_FALSE(xt.is_contiguous());
  for (DType d : kAllDTypes) {
    if (d == DType::bool_) continue;
    zae::Tensor y = xt.to(d);
    // A conversion makes a fresh contiguous tensor; to(same dtype) returns the view itself.
    EXPECT_EQ(y.is_contiguous(), d != DType::float64) << d;
    EXPECT_EQ(y.shape(), (zae::Shape{3, 2}));
    EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{1, 4, 2, 5, 3, 6})) << d;
  }
}

}  // namespace
