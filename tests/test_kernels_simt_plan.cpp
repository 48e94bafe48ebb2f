// Host-side planning of the CUDA elementwise kernels (kernels/simt/launch_plan.h) and
// their device index calculator (kernels/simt/offset_calc.h), without a GPU: vector
// widths, when the contiguous path applies, grid sizes, the 32-bit chunking of large
// iteration spaces (every element exactly once, offsets as the CPU traversal) and
// OffsetCalc against the CPU traversal for random layouts, negative strides and 8 dims.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/ops/factory.h"
#include "engine/ops/iter.h"
#include "engine/tensor.h"
#include "kernels/simt/launch_plan.h"
#include "kernels/simt/offset_calc.h"
#include "kernels/strided.h"

namespace {

namespace ks = zae::kernels::simt;
using zae::Tensor;
using zae::kernels::StridedIter;

TEST(SimtPlan, VectorWidthIsSixteenBytesOfTheWidestOperand) {
  EXPECT_EQ(ks::vector_width(std::array<int, 2>{4, 4}), 4);
  EXPECT_EQ(ks::vector_width(std::array<int, 2>{2, 2}), 8);
  EXPECT_EQ(ks::vector_width(std::array<int, 3>{1, 4, 4}), 4);
  EXPECT_EQ(ks::vector_width(std::array<int, 2>{8, 1}), 2);
  EXPECT_EQ(ks::vector_width(std::array<int, 1>{1}), 16);
}

TEST(SimtPlan, DensePathNeedsDenseAlignedOperands) {
  alignas(64) static float buf[64];
  StridedIter<3> it;
  it.ndim = 1;
  it.sizes[0] = 40;
  it.strides = {{{1}, {1}, {1}}};
  const std::array<int, 3> bytes{4, 4, 4};
  auto plan = ks::vector_path_ok<3>(it, {buf, buf + 8, buf + 16}, bytes, 4);
  EXPECT_TRUE(plan.ok);
  EXPECT_EQ(plan.n, 40);
  EXPECT_FALSE(plan.broadcast[1] || plan.broadcast[2]);
  EXPECT_FALSE((ks::vector_path_ok<3>(it, {buf, buf + 1, buf}, bytes, 4).ok)) << "misaligned input";
  EXPECT_FALSE((ks::vector_path_ok<3>(it, {buf + 2, buf, buf}, bytes, 4).ok)) << "misaligned output";
  it.strides[2][0] = 0;  // b broadcast: read once, any alignment
  plan = ks::vector_path_ok<3>(it, {buf, buf + 4, buf + 3}, bytes, 4);
  EXPECT_TRUE(plan.ok);
  EXPECT_TRUE(plan.broadcast[2]);
  it.strides[0][0] = 0;  // a broadcast output is never dense
  EXPECT_FALSE((ks::vector_path_ok<3>(it, {buf, buf, buf}, bytes, 4).ok));
  it.strides = {{{2}, {1}, {1}}};  // a strided output
  EXPECT_FALSE((ks::vector_path_ok<3>(it, {buf, buf, buf}, bytes, 4).ok));
  StridedIter<3> two_d;
  two_d.ndim = 2;
  two_d.sizes = {{4, 4}};
  two_d.strides = {{{4, 1}, {1, 4}, {4, 1}}};
  EXPECT_FALSE((ks::vector_path_ok<3>(two_d, {buf, buf, buf}, bytes, 4).ok));
  StridedIter<3> scalar;  // 0-dim: one dense element
  plan = ks::vector_path_ok<3>(scalar, {buf, buf + 1, buf + 2}, bytes, 4);
  EXPECT_FALSE(plan.ok) << "a lone element is still checked for alignment";
  plan = ks::vector_path_ok<3>(scalar, {buf, buf, buf}, bytes, 4);
  EXPECT_TRUE(plan.ok);
  EXPECT_EQ(plan.n, 1);
}

TEST(SimtPlan, GridSizeCoversWorkAndCapsAtResidentBlocks) {
  EXPECT_EQ(ks::grid_size(1, 132), 1);
  EXPECT_EQ(ks::grid_size(256, 132), 1);
  EXPECT_EQ(ks::grid_size(257, 132), 2);
  EXPECT_EQ(ks::grid_size(int64_t{1} << 40, 132), 132 * 8);
  EXPECT_EQ(ks::grid_size(0, 132), 1);
  EXPECT_EQ(ks::dense_work(7, 4), 1);
  EXPECT_EQ(ks::dense_work(3, 4), 3);
  EXPECT_EQ(ks::dense_work((1 << 20) + 3, 4), 1 << 18);
}

// Element offsets of every operand per linear index, from the CPU traversal.
template <int N>
std::vector<std::array<int64_t, N>> reference_offsets(const StridedIter<N>& it) {
  std::vector<std::array<int64_t, N>> out;
  zae::kernels::for_each_run(it, 0, it.numel(), [&](const auto& off, int64_t count, const auto& st) {
    for (int64_t i = 0; i < count; ++i) {
      std::array<int64_t, N> o{};
      for (int k = 0; k < N; ++k) o[k] = off[k] + i * st[k];
      out.push_back(o);
    }
  });
  return out;
}

StridedIter<2> random_iter(std::mt19937_64& rng, bool negative_strides) {
  StridedIter<2> it;
  it.ndim = static_cast<int>(rng() % 5);  // 0..4 dims
  for (int d = 0; d < it.ndim; ++d) it.sizes[d] = 1 + static_cast<int64_t>(rng() % 6);
  for (int k = 0; k < 2; ++k) {
    int64_t dense = 1;
    for (int d = it.ndim - 1; d >= 0; --d) {
      const int kind = static_cast<int>(rng() % 4);
      int64_t st = kind == 0 ? 0 : kind == 1 ? dense : dense * 3 + 1;
      if (negative_strides && rng() % 3 == 0) st = -st;
      it.strides[k][d] = st;
      dense *= it.sizes[d];
    }
  }
  return it;
}

TEST(SimtPlan, ChunksCoverEveryElementOnceWithinTheLimit) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const StridedIter<2> it = random_iter(rng, trial % 2 == 1);
    const auto want = reference_offsets(it);
    const int64_t limit = 1 + static_cast<int64_t>(rng() % 40);
    std::vector<std::array<int64_t, 2>> got(want.size(), {-1, -1});
    std::vector<int> seen(want.size(), 0);
    ks::for_each_32bit_chunk<2>(
        it,
        [&](const StridedIter<2>& chunk, const std::array<int64_t, 2>& base, int64_t linear_begin) {
          ASSERT_LE(chunk.numel(), limit);
          for (int k = 0; k < 2; ++k) ASSERT_LE(ks::max_offset(chunk, k), limit);
          const auto local = reference_offsets(chunk);
          for (size_t i = 0; i < local.size(); ++i) {
            const size_t g = static_cast<size_t>(linear_begin) + i;
            ASSERT_LT(g, want.size());
            ++seen[g];
            for (int k = 0; k < 2; ++k) got[g][k] = base[k] + local[i][k];
          }
        },
        limit);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(seen[i], 1) << "trial " << trial << " element " << i;
      ASSERT_EQ(got[i], want[i]) << "trial " << trial << " element " << i;
    }
  }
}

TEST(SimtOffsetCalc, MatchesTheCpuTraversalIncludingNegativeStrides) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const StridedIter<2> it = random_iter(rng, trial % 2 == 1);
    const auto want = reference_offsets(it);
    const auto oc = ks::OffsetCalc<2>::from(it);
    for (size_t i = 0; i < want.size(); ++i) {
      int32_t off[2];
      oc.get(static_cast<uint32_t>(i), off);
      ASSERT_EQ(off[0], want[i][0]) << "trial " << trial << " element " << i;
      ASSERT_EQ(off[1], want[i][1]) << "trial " << trial << " element " << i;
    }
  }
}

TEST(SimtOffsetCalc, UsesEightDims) {
  Tensor x = zae::zeros({2, 2, 3, 2, 2, 3, 2, 2}).permute({7, 6, 5, 4, 3, 2, 1, 0});
  Tensor out = zae::empty(x.shape());
  auto it = zae::make_iter<2>({&out, &x}, "test");
  ASSERT_EQ(it.ndim, 8);  // reversed dims: nothing merges
  const auto want = reference_offsets(it);
  const auto oc = ks::OffsetCalc<2>::from(it);
  for (size_t i = 0; i < want.size(); ++i) {
    int32_t off[2];
    oc.get(static_cast<uint32_t>(i), off);
    ASSERT_EQ(off[1], want[i][1]) << i;
  }
}

}  // namespace
