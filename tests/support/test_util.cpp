// Shared test helpers; see test_util.h.
#include "tests/support/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/generator.h"
#include "engine/ops/factory.h"

namespace zae::test {

namespace {

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
  os << ']';
  return os.str();
}

}  // namespace

::testing::AssertionResult all_close(const Tensor& t, const std::vector<double>& expected, double rtol, double atol) {
  if (!t.defined()) return ::testing::AssertionFailure() << "all_close: tensor is undefined";
  if (t.numel() != static_cast<int64_t>(expected.size()))
    return ::testing::AssertionFailure() << "all_close: tensor of shape " << shape_str(t.shape()) << " has "
                                         << t.numel() << " elements, expected " << expected.size();
  std::vector<double> got;
  try {
    NoGradGuard no_grad;
    got = t.to_vector<double>();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "all_close: cannot read the tensor: " << e.what();
  }
  int64_t bad = 0, first_bad = -1, worst = -1;
  double worst_err = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = expected[i];
    bool ok = (std::isnan(g) && std::isnan(e)) || (g == e) || std::fabs(g - e) <= atol + rtol * std::fabs(e);
    if (ok) continue;
    ++bad;
    if (first_bad < 0) first_bad = static_cast<int64_t>(i);
    double err = std::isnan(g - e) ? INFINITY : std::fabs(g - e);
    if (err > worst_err) {
      worst_err = err;
      worst = static_cast<int64_t>(i);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  auto at = [&](int64_t i) {
    std::ostringstream os;
    os << index_str(i, t.shape()) << ": got " << got[static_cast<size_t>(i)] << ", expected "
       << expected[static_cast<size_t>(i)];
    return os.str();
  };
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements of a tensor of shape "
                                       << shape_str(t.shape()) << " differ (rtol " << rtol << ", atol " << atol
                                       << "); first " << at(first_bad) << "; worst " << at(worst);
}

void expect_close(const Tensor& t, const std::vector<double>& expected, double rtol, double atol) {
  EXPECT_TRUE(all_close(t, expected, rtol, atol));
}

::testing::AssertionResult throws_with(const std::function<void()>& fn, const std::vector<std::string>& substrings) {
  try {
    fn();
  } catch (const zae::Error& e) {
    const std::string what = e.what();
    for (const std::string& s : substrings)
      if (what.find(s) == std::string::npos)
        return ::testing::AssertionFailure() << "zae::Error message lacks \"" << s << "\": " << what;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "expected zae::Error, got another exception: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "expected zae::Error, got a non-std exception";
  }
  return ::testing::AssertionFailure() << "expected zae::Error, nothing was thrown";
}

void expect_throws_with(const std::function<void()>& fn, const std::vector<std::string>& substrings) {
  EXPECT_TRUE(throws_with(fn, substrings));
}

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  if (is_floating(dtype)) return randn(shape, {.dtype = dtype}, &gen);
  if (dtype == DType::bool_) return randint(0, 2, shape, {.dtype = DType::int64}, &gen).to(DType::bool_);
  return randint(0, 10, shape, {.dtype = dtype}, &gen);
}

Tensor make_input(const InputSpec& in, uint64_t seed) {
  const int64_t n = shape_numel(in.shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto sign = [&] { return u01(rng) < 0.5 ? -1.0 : 1.0; };
  std::vector<double> v(static_cast<size_t>(n));
  switch (in.domain) {
    case Domain::uniform:
      for (double& x : v) x = -1.5 + 3.0 * u01(rng);
      break;
    case Domain::positive:
      for (double& x : v) x = 0.5 + 1.5 * u01(rng);
      break;
    case Domain::nonzero:
      for (double& x : v) x = sign() * (0.2 + 1.3 * u01(rng));
      break;
    case Domain::distinct: {
      std::vector<int64_t> k(static_cast<size_t>(n));
      std::iota(k.begin(), k.end(), 0);
      std::shuffle(k.begin(), k.end(), rng);
      for (size_t i = 0; i < v.size(); ++i) v[i] = sign() * (0.2 + 0.1 * static_cast<double>(k[i]));
      break;
    }
    case Domain::index: {
      std::vector<int64_t> iv(static_cast<size_t>(n));
      for (size_t i = 0; i < iv.size(); ++i)
        iv[i] = in.values.empty() ? static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(in.high, 1)))
                                  : static_cast<int64_t>(in.values.at(i));
      return tensor<int64_t>(iv, in.shape);
    }
    case Domain::mask: {
      std::vector<uint8_t> m(static_cast<size_t>(n));
      for (auto& b : m) b = u01(rng) < 0.5;
      if (n > 1) {  // both values always present
        m.front() = 1;
        m.back() = 0;
      }
      return tensor<uint8_t>(m, in.shape, {.dtype = DType::bool_});
    }
    case Domain::values:
      v = in.values;
      break;
  }
  Tensor base = in.shape.empty() ? scalar_tensor(v.at(0), {.dtype = DType::float64}) : tensor<double>(v, in.shape);
  return in.requires_grad ? make_variant(base, in.variant) : base;
}

Tensor uniform_tensor(const Shape& shape, DType dtype, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& e : v) e = u(rng);
  return tensor(v, shape).to(dtype);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to(DType::float64).contiguous().to_vector<double>();
  const std::vector<double> vb = b.to(DType::float64).contiguous().to_vector<double>();
  EXPECT_EQ(va.size(), vb.size());
  double m = 0.0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) m = std::max(m, std::fabs(va[i] - vb[i]));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0.0;
  for (double v : a.to(DType::float64).contiguous().to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

}  // namespace zae::test
