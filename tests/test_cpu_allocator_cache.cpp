// The CPU allocator's cache of large blocks (engine/allocator.h): reuse, the 3/4 fit
// rule, alignment, the bound, emptying, small blocks bypassing it, and concurrent use.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/allocator.h"
#include "engine/ops/factory.h"

namespace zae {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Restores the default bound and an empty cache around each test.
class CpuAllocatorCache : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_limit_ = cpu_cache_stats().limit_bytes;
    cpu_empty_cache();
  }
  void TearDown() override {
    cpu_set_cache_limit(saved_limit_);
    cpu_empty_cache();
  }
  Allocator& cpu() { return allocator_for(Device::cpu()); }
  size_t saved_limit_ = 0;
};

TEST_F(CpuAllocatorCache, FreedLargeBlockIsReusedForTheSameSize) {
  cpu_set_cache_limit(64 * kMiB);
  void* first = nullptr;
  {
    DataPtr p = cpu().allocate(4 * kMiB);
    first = p.get();
    std::memset(first, 1, 4 * kMiB);
  }
  CpuCacheStats s = cpu_cache_stats();
  EXPECT_EQ(s.cached_blocks, 1u);
  EXPECT_EQ(s.cached_bytes, 4 * kMiB);
  const uint64_t hits = s.hits;
  DataPtr again = cpu().allocate(4 * kMiB);
  EXPECT_EQ(again.get(), first);
  EXPECT_EQ(cpu_cache_stats().hits, hits + 1);
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 0u);
}

TEST_F(CpuAllocatorCache, BlockServesRequestsOfAtLeastThreeQuartersOfItsSize) {
  cpu_set_cache_limit(64 * kMiB);
  void* big = nullptr;
  { DataPtr p = cpu().allocate(8 * kMiB); big = p.get(); }
  {
    DataPtr small = cpu().allocate(3 * kMiB);  // 8 MiB would waste more than a third
    EXPECT_NE(small.get(), big);
  }
  cpu_empty_cache();
  { DataPtr p = cpu().allocate(8 * kMiB); big = p.get(); }
  DataPtr near = cpu().allocate(7 * kMiB);
  EXPECT_EQ(near.get(), big);
}

TEST_F(CpuAllocatorCache, BlocksAre64ByteAlignedAndSmallOnesBypassTheCache) {
  cpu_set_cache_limit(64 * kMiB);
  for (size_t bytes : {size_t{1}, size_t{100}, kMiB - 64, kMiB, kMiB + 1, 3 * kMiB + 7}) {
    DataPtr p = cpu().allocate(bytes);
    ASSERT_NE(p.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % kCpuAlignment, 0u) << bytes;
    std::memset(p.get(), 0xab, bytes);  // the whole request is writable
  }
  cpu_empty_cache();
  { DataPtr p = cpu().allocate(kMiB / 2); }
  EXPECT_EQ(cpu_cache_stats().cached_blocks, 0u);
  DataPtr zero = cpu().allocate(0);  // valid, never dereferenced
  (void)zero;
}

TEST_F(CpuAllocatorCache, CachedBytesStayWithinTheLimit) {
  cpu_set_cache_limit(5 * kMiB);
  {
    DataPtr a = cpu().allocate(2 * kMiB), b = cpu().allocate(2 * kMiB), c = cpu().allocate(2 * kMiB);
  }
  EXPECT_LE(cpu_cache_stats().cached_bytes, 5 * kMiB);
  { DataPtr huge = cpu().allocate(6 * kMiB); }  // larger than the bound: not cached
  EXPECT_LE(cpu_cache_stats().cached_bytes, 5 * kMiB);

  cpu_set_cache_limit(0);  // off: nothing is kept
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 0u);
  { DataPtr a = cpu().allocate(2 * kMiB); }
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 0u);
}

TEST_F(CpuAllocatorCache, EmptyCacheReleasesEverything) {
  cpu_set_cache_limit(64 * kMiB);
  { DataPtr a = cpu().allocate(2 * kMiB), b = cpu().allocate(3 * kMiB); }
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 5 * kMiB);
  cpu_empty_cache();
  EXPECT_EQ(cpu_cache_stats().cached_bytes, 0u);
  EXPECT_EQ(cpu_cache_stats().cached_blocks, 0u);
}

TEST_F(CpuAllocatorCache, TensorsReuseBlocksAndKeepTheirValues) {
  cpu_set_cache_limit(64 * kMiB);
  const void* data = nullptr;
  {
    Tensor t = full({512, 1024}, 3.0);  // 2 MiB
    data = t.raw_data();
  }
  Tensor u = full({512, 1024}, 5.0);
  EXPECT_EQ(u.raw_data(), data);
  const float* p = u.data<float>();
  for (int64_t i = 0; i < u.numel(); i += 4099) ASSERT_EQ(p[i], 5.0f);
}

TEST_F(CpuAllocatorCache, ConcurrentAllocateAndFreeKeepBlocksPrivate) {
  cpu_set_cache_limit(32 * kMiB);
  constexpr int kThreads = 4, kRounds = 200;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const size_t bytes = (1 + (t + r) % 3) * kMiB;
        DataPtr p = allocator_for(Device::cpu()).allocate(bytes);
        auto* w = static_cast<uint32_t*>(p.get());
        const uint32_t tag = static_cast<uint32_t>(t * 100000 + r);
        const size_t n = bytes / sizeof(uint32_t);
        for (size_t i = 0; i < n; i += 1024) w[i] = tag;
        std::this_thread::yield();
        for (size_t i = 0; i < n; i += 1024) failures[t] += w[i] != tag;
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_LE(cpu_cache_stats().cached_bytes, 32 * kMiB);
}

}  // namespace
}  // namespace zae
