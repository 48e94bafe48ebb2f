// Helpers shared by the tests: value comparison against expected numbers, checking
// that an error is thrown with the right message, seeded random tensors, bitwise and
// max-difference comparison of two tensors, and domain-constrained inputs in a chosen
// memory layout (make_input).
// Invariants: the checking helpers report through GoogleTest (non-fatal EXPECT-style
// failures) and never throw; random_tensor and make_input are pure functions of their
// arguments.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tests/support/gradcheck.h"

namespace zae::test {

/// Succeeds when `t` has expected.size() elements and, in row-major order, every
/// |t[i] - expected[i]| <= atol + rtol * |expected[i]| (NaN only matches NaN).
/// The message names the first bad element, its multi-index and the worst error.
::testing::AssertionResult all_close(const Tensor& t, const std::vector<double>& expected, double rtol = 1e-6,
                                     double atol = 1e-8);

/// EXPECT_TRUE(all_close(...)).
void expect_close(const Tensor& t, const std::vector<double>& expected, double rtol = 1e-6, double atol = 1e-8);

/// Succeeds when fn throws zae::Error whose what() contains every substring.
::testing::AssertionResult throws_with(const std::function<void()>& fn, const std::vector<std::string>& substrings);

/// EXPECT_TRUE(throws_with(...)).
void expect_throws_with(const std::function<void()>& fn, const std::vector<std::string>& substrings);

/// A CPU tensor drawn from zae::Generator(seed): standard normal for floating dtypes,
/// integers uniform in [0, 10) for integer dtypes, and 0/1 for bool.
Tensor random_tensor(const Shape& shape, DType dtype = DType::float32, uint64_t seed = 0);

/// A CPU tensor of float64 values drawn uniformly from [lo, hi) by std::mt19937_64(seed),
/// then converted to `dtype`.
Tensor uniform_tensor(const Shape& shape, DType dtype, uint64_t seed, double lo, double hi);

/// Whether a and b are both undefined, or both defined with equal shapes, dtypes and bytes
/// (any strides: compared contiguous).
bool same_bits(const Tensor& a, const Tensor& b);

/// The largest |a[i] - b[i]|, in float64 (EXPECTs equal element counts).
double max_abs_diff(const Tensor& a, const Tensor& b);

/// The largest |a[i]|, in float64 (0 for an empty tensor).
double max_abs(const Tensor& a);

/// How make_input draws a test input's values (ranges chosen to keep ops in their smooth domains).
enum class Domain {
  uniform,   ///< float64 U[-1.5, 1.5]
  positive,  ///< float64 U[0.5, 2] (log, sqrt, rsqrt, pow, divisors)
  nonzero,   ///< float64 +-U[0.2, 1.5] (abs, relu: away from the kink at 0)
  distinct,  ///< float64 +-(0.2 + 0.1 k), k a permutation: distinct magnitudes (max, amax, norm inf)
  index,     ///< int64 in [0, high), or `values` when given
  mask,      ///< bool, about half true; with >= 2 elements the first is true and the last false
  values,    ///< float64 `values`
};

/// A test input: its shape, value domain, and (when it requires grad) memory layout.
struct InputSpec {
  Shape shape;
  Domain domain = Domain::uniform;
  bool requires_grad = true;   ///< ignored for index and mask
  int64_t high = 0;            ///< index: upper bound (exclusive) of random indices
  std::vector<double> values;  ///< index / values: explicit values in row-major order
  Variant variant = Variant::contiguous;
};

/// Builds the input described by `spec`, a pure function of (spec, seed): float64
/// inputs that require grad go through make_variant (leaf requires grad); the rest
/// are plain tensors (float64, int64 indices or bool masks).
Tensor make_input(const InputSpec& spec, uint64_t seed);

}  // namespace zae::test
