// The caching allocator on a real device (ctest label gpu; every test skips without
// one): freed tensor memory is reused without cudaMalloc, the counters follow
// allocations and frees, empty_cache() hands cached segments back, data survives a
// round trip through cached blocks, and an impossible request is a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/cuda_memory.h"
#include "engine/device.h"
#include "engine/tensor.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr Device kCuda = Device::cuda(0);

#define SKIP_WITHOUT_CUDA() \
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device"

Tensor cuda_floats(int64_t n) { return Tensor::empty({n}, {.dtype = DType::float32, .device = kCuda}); }

TEST(CudaMemory, FreedMemoryIsReusedWithoutCudaMalloc) {
  SKIP_WITHOUT_CUDA();
  cuda::empty_cache();
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  void* first = nullptr;
  {
    Tensor a = cuda_floats(int64_t{1} << 20);  // 4 MiB: one 20 MiB segment
    first = a.raw_data();
  }
  const cuda::MemoryStats s1 = cuda::memory_stats(0);
  EXPECT_EQ(s1.num_raw_allocs, s0.num_raw_allocs + 1);
  EXPECT_EQ(s1.reserved_bytes, s0.reserved_bytes + 20 * kMiB);
  EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes);
  Tensor b = cuda_floats(int64_t{1} << 20);
  EXPECT_EQ(b.raw_data(), first);
  Tensor c = cuda_floats(512 * 1024);  // 2 MiB: from the rest of the same segment
  const cuda::MemoryStats s2 = cuda::memory_stats(0);
  EXPECT_EQ(s2.num_raw_allocs, s1.num_raw_allocs);
  EXPECT_EQ(s2.num_cache_hits, s1.num_cache_hits + 2);
  EXPECT_EQ(s2.num_allocs, s1.num_allocs + 2);
}

TEST(CudaMemory, CountersFollowAllocationsAndFrees) {
  SKIP_WITHOUT_CUDA();
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  {
    Tensor a = cuda_floats(3 * 256 * 1024);  // 3 MiB
    Tensor b = cuda_floats(100);             // 400 B -> 512 B
    const cuda::MemoryStats s1 = cuda::memory_stats(0);
    EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes + 3 * kMiB + 512);
    EXPECT_GE(s1.peak_allocated_bytes, s1.allocated_bytes);
    EXPECT_GE(s1.reserved_bytes, s1.allocated_bytes);
    EXPECT_EQ(s1.num_allocs, s0.num_allocs + 2);
  }
  const cuda::MemoryStats s2 = cuda::memory_stats(0);
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_EQ(s2.num_frees, s0.num_frees + 2);
  EXPECT_GE(s2.peak_allocated_bytes, s0.allocated_bytes + 3 * kMiB + 512);
  cuda::reset_peak_memory_stats(0);
  const cuda::MemoryStats s3 = cuda::memory_stats(0);
  EXPECT_EQ(s3.peak_allocated_bytes, s3.allocated_bytes);
  EXPECT_EQ(s3.peak_reserved_bytes, s3.reserved_bytes);
}

TEST(CudaMemory, EmptyCacheLowersReserved) {
  SKIP_WITHOUT_CUDA();
  { Tensor big = cuda_floats(16 * 1024 * 1024); }  // 64 MiB, its own segment, now cached
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  EXPECT_GE(s0.reserved_bytes, 64 * kMiB);
  cuda::empty_cache();
  const cuda::MemoryStats s1 = cuda::memory_stats(0);
  EXPECT_LE(s1.reserved_bytes, s0.reserved_bytes - 64 * kMiB);
  EXPECT_GT(s1.num_raw_frees, s0.num_raw_frees);
  EXPECT_EQ(s1.allocated_bytes, 0u);  // no tensor of this program is alive
  EXPECT_EQ(s1.reserved_bytes, 0u);
}

TEST(CudaMemory, DataSurvivesCachedBlocks) {
  SKIP_WITHOUT_CUDA();
  std::vector<float> values(5000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f - 7.0f;
  for (int round = 0; round < 3; ++round) {  // later rounds run in reused blocks
    Tensor host = Tensor::empty({static_cast<int64_t>(values.size())});
    std::copy(values.begin(), values.end(), host.data<float>());
    Tensor back = host.to(kCuda).to(Device::cpu());
    EXPECT_EQ(back.to_vector<float>(), values) << "round " << round;
  }
}

TEST(CudaMemory, ImpossibleRequestIsAClearError) {
  SKIP_WITHOUT_CUDA();
  const cuda::MemoryStats s0 = cuda::memory_stats(0);
  test::expect_throws_with([] { cuda_floats(int64_t{1} << 48); },  // 1 PiB
                           {"CUDA out of memory on cuda:0", "tried to allocate 1073741824.00 MiB",
                            "allocated by tensors", "reserved (cached)", "total (reported by the backend)"});
  EXPECT_EQ(cuda::memory_stats(0).num_ooms, s0.num_ooms + 1);
  Tensor after = cuda_floats(1024);  // the allocator still works
  EXPECT_EQ(after.device(), kCuda);
}

}  // namespace
}  // namespace zae
