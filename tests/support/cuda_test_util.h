// Helpers shared by the CUDA-versus-CPU tests (tests/test_*_cuda.cpp): skipping a test
// where no CUDA device is present, the floating dtypes the tests sweep, per-dtype
// tolerances (and the one the row-reduction kernels share), poisoning the caching
// allocator so an output element a kernel fails to write shows up, comparing a CUDA
// result with its CPU twin under a tolerance relative to the largest |value|, and the
// same random leaf on both devices.
// Invariants: the checks report through GoogleTest and never throw; the random makers
// are pure functions of their arguments (values drawn on the CPU, then copied).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "engine/device.h"
#include "engine/tensor.h"

/// Skips the current test (GTEST_SKIP) when no CUDA device is present.
#define ZAE_SKIP_WITHOUT_CUDA() \
  if (!::zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

namespace zae::test {

/// A relative tolerance per dtype class for comparing a CUDA result with its CPU twin.
struct DTypeTolerance {
  double float64 = 0.0;
  double float32 = 0.0;
  double bfloat16 = 0.0;
  double float16 = 0.0;
  double integral = 0.0;  ///< every non-floating dtype (integers, bool, indices)
};

/// The entry of `tol` for dt's class.
double tolerance_for(DType dt, const DTypeTolerance& tol);

/// The floating dtypes the CUDA tests sweep, in this order.
inline constexpr DType kFloatingDTypes[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16};

/// The tolerance of the kernels that reduce along rows with float32 (float64 for float64)
/// accumulators: softmax, (add_)layer_norm, cross-entropy.
inline constexpr DTypeTolerance kRowReductionTolerance{
    .float64 = 1e-10, .float32 = 1e-5, .bfloat16 = 1e-2, .float16 = 1e-3, .integral = 1e-5};

/// got (CUDA) against want (CPU): both defined, got on a CUDA device, same shape and
/// dtype, and per element |got - want| <= rtol * (max(1, max finite |want|) + |want|);
/// NaN matches NaN only and inf matches itself. rtol = 0 asks for exact equality.
::testing::AssertionResult cuda_matches_cpu(const Tensor& got, const Tensor& want, double rtol);

/// Allocates and frees, on the CUDA device, a block of the size of `cpu_result` filled
/// with NaN (floating dtypes) or 77 (integer dtypes), so that a same-sized output
/// allocated next likely reuses it and an element a kernel fails to write shows up.
/// Nothing for an empty or bool result.
void poison_cuda_like(const Tensor& cpu_result);

/// The same values as a leaf on the CPU and on the CUDA device, both requiring grad.
struct LeafPair {
  Tensor cpu, cuda;
};

/// A LeafPair of random_tensor(shape, dt, seed) * scale + shift (drawn on the CPU).
LeafPair random_leaf_pair(const Shape& shape, DType dt, uint64_t seed, double scale = 1.0, double shift = 0.0);

/// Backward of sum(out * w) on both devices for the same random w (random_tensor of
/// out_cpu's shape and dtype with `seed`, copied to the device for out_cuda).
void backward_both_weighted(const Tensor& out_cpu, const Tensor& out_cuda, uint64_t seed);

}  // namespace zae::test
