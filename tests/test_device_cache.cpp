// The caching policy behind the CUDA allocator (engine/device_cache.h), driven through
// a fake backend: raw allocations are fake address ranges tracked in a map under a
// configurable capacity, and events complete only when the test says so. Covers
// rounding and segment sizes, reuse, splitting and coalescing, the two pools, the
// exact segment of large requests, per-stream isolation, record_stream, the
// out-of-memory retry and message, stats, empty_cache, double frees and a
// multithreaded stress run.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/cuda_memory.h"
#include "engine/device.h"
#include "engine/device_cache.h"
#include "tests/support/test_util.h"

namespace zae::detail {
namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr StreamId kS1 = 0x1000, kS2 = 0x2000, kS3 = 0x3000;

// What the fake backend did; shared by the test and the backend the cache owns.
struct FakeDevice {
  struct Event {
    StreamId stream = 0;
    bool recorded = false, done = false, destroyed = false;
  };
  std::mutex mu;
  size_t capacity = size_t{1} << 50;
  size_t used = 0;
  uintptr_t next_address = uintptr_t{1} << 40;
  std::map<uintptr_t, size_t> allocs;  // live raw allocations
  std::vector<size_t> raw_sizes;       // every successful raw_alloc, in order
  int failed_allocs = 0, bad_calls = 0;
  std::vector<Event> events;  // EventId = index + 1

  void complete(StreamId stream) {
    std::lock_guard<std::mutex> lock(mu);
    for (Event& e : events)
      if (e.recorded && e.stream == stream) e.done = true;
  }
  int live_events() {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<int>(std::count_if(events.begin(), events.end(), [](const Event& e) { return !e.destroyed; }));
  }
};

class FakeBackend final : public DeviceBackend {
 public:
  explicit FakeBackend(FakeDevice& d) : d_(d) {}
  void* raw_alloc(size_t bytes) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    if (d_.used + bytes > d_.capacity) {
      ++d_.failed_allocs;
      return nullptr;
    }
    const uintptr_t p = d_.next_address;
    d_.next_address += (bytes + 2 * kMiB) / kMiB * kMiB;  // a gap between segments
    d_.allocs[p] = bytes;
    d_.used += bytes;
    d_.raw_sizes.push_back(bytes);
    return reinterpret_cast<void*>(p);
  }
  void raw_free(void* ptr) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    auto it = d_.allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == d_.allocs.end()) return void(++d_.bad_calls);
    d_.used -= it->second;
    d_.allocs.erase(it);
  }
  EventId event_create() override {
    std::lock_guard<std::mutex> lock(d_.mu);
    d_.events.emplace_back();
    return d_.events.size();
  }
  void event_record(EventId e, StreamId stream) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    d_.events.at(e - 1) = {.stream = stream, .recorded = true, .done = false, .destroyed = false};
  }
  bool event_query(EventId e) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    const FakeDevice::Event& ev = d_.events.at(e - 1);
    if (ev.destroyed || !ev.recorded) ++d_.bad_calls;
    return ev.done;
  }
  void event_destroy(EventId e) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    FakeDevice::Event& ev = d_.events.at(e - 1);
    if (ev.destroyed) ++d_.bad_calls;
    ev.destroyed = true;
  }
  void mem_info(size_t* free_bytes, size_t* total_bytes) override {
    std::lock_guard<std::mutex> lock(d_.mu);
    *free_bytes = d_.capacity - d_.used;
    *total_bytes = d_.capacity;
  }

 private:
  FakeDevice& d_;
};

// A cache over a fake device; the device outlives the cache.
struct Harness {
  explicit Harness(size_t capacity = size_t{1} << 50, int device = 0) {
    dev.capacity = capacity;
    cache = std::make_unique<BlockCache>(device, std::make_unique<FakeBackend>(dev));
  }
  ~Harness() {
    cache.reset();
    EXPECT_EQ(dev.bad_calls, 0);
    EXPECT_TRUE(dev.allocs.empty()) << "the cache's destructor must return every segment";
  }
  FakeDevice dev;
  std::unique_ptr<BlockCache> cache;
};

uintptr_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(DeviceCache, RoundingAndSegmentSizes) {
  EXPECT_EQ(BlockCache::round_size(0), 512u);
  EXPECT_EQ(BlockCache::round_size(1), 512u);
  EXPECT_EQ(BlockCache::round_size(512), 512u);
  EXPECT_EQ(BlockCache::round_size(513), 1024u);
  EXPECT_EQ(BlockCache::segment_size(512), 2 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(kMiB), 2 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(kMiB + 512), 20 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(10 * kMiB), 20 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(10 * kMiB + 512), 12 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(12 * kMiB), 12 * kMiB);
  EXPECT_EQ(BlockCache::segment_size(13 * kMiB), 14 * kMiB);
}

TEST(DeviceCache, FreedBlockIsReusedWithoutRawAlloc) {
  Harness h;
  void* p = h.cache->allocate(1000, kS1);
  h.cache->free(p);
  void* q = h.cache->allocate(1000, kS1);
  EXPECT_EQ(q, p);
  const cuda::MemoryStats s = h.cache->stats();
  EXPECT_EQ(s.num_raw_allocs, 1u);
  EXPECT_EQ(s.num_cache_hits, 1u);
  EXPECT_EQ(s.num_allocs, 2u);
  EXPECT_EQ(s.allocated_bytes, 1024u);
  h.cache->free(q);
}

TEST(DeviceCache, SplitsAndCoalescesInEveryFreeOrder) {
  std::array<int, 3> order{0, 1, 2};
  do {
    Harness h;
    std::array<void*, 3> p{};
    for (auto& x : p) x = h.cache->allocate(4 * kKiB, kS1);
    EXPECT_EQ(addr(p[1]), addr(p[0]) + 4 * kKiB);
    EXPECT_EQ(addr(p[2]), addr(p[1]) + 4 * kKiB);
    ASSERT_EQ(h.cache->snapshot().at(0).blocks.size(), 4u);  // a, b, c and the free rest
    for (int i : order) h.cache->free(p[static_cast<size_t>(i)]);
    const std::vector<SegmentInfo> snap = h.cache->snapshot();
    ASSERT_EQ(snap.size(), 1u);
    ASSERT_EQ(snap[0].blocks.size(), 1u) << "free order " << order[0] << order[1] << order[2];
    EXPECT_EQ(snap[0].blocks[0].size, 2 * kMiB);
    EXPECT_FALSE(snap[0].blocks[0].allocated);
    // The merged block serves two 1 MiB requests that fill the segment exactly.
    void* a = h.cache->allocate(kMiB, kS1);
    void* b = h.cache->allocate(kMiB, kS1);
    EXPECT_EQ(addr(b), addr(a) + kMiB);
    EXPECT_EQ(h.cache->stats().num_raw_allocs, 1u);
    h.cache->free(a);
    h.cache->free(b);
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST(DeviceCache, PartialCoalescingMergesOnlyFreeNeighbours) {
  Harness h;
  void* a = h.cache->allocate(4 * kKiB, kS1);
  void* b = h.cache->allocate(4 * kKiB, kS1);
  void* c = h.cache->allocate(4 * kKiB, kS1);
  h.cache->free(b);
  EXPECT_EQ(h.cache->snapshot()[0].blocks.size(), 4u);
  h.cache->free(a);  // a + b merge; c still separates them from the rest
  std::vector<BlockInfo> blocks = h.cache->snapshot()[0].blocks;
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].size, 8 * kKiB);
  EXPECT_FALSE(blocks[0].allocated);
  EXPECT_TRUE(blocks[1].allocated);
  h.cache->free(c);
}

TEST(DeviceCache, SmallPoolSplitsDownTo512Bytes) {
  Harness h;
  void* x = h.cache->allocate(1536, kS1);
  void* y = h.cache->allocate(512, kS1);
  h.cache->free(x);
  void* z = h.cache->allocate(1024, kS1);  // best fit: x's 1536-byte block, split 1024 + 512
  EXPECT_EQ(z, x);
  const std::vector<BlockInfo> blocks = h.cache->snapshot()[0].blocks;
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].size, 1024u);
  EXPECT_EQ(blocks[1].size, 512u);
  EXPECT_FALSE(blocks[1].allocated);
  h.cache->free(y);
  h.cache->free(z);
}

TEST(DeviceCache, LargePoolSplitsOnlyWhenMoreThan1MiBRemains) {
  Harness h;
  void* a = h.cache->allocate(9 * kMiB + 512 * kKiB, kS1);  // 20 MiB segment: 10.5 MiB remain
  void* b = h.cache->allocate(9 * kMiB + 512 * kKiB, kS1);  // 1 MiB would remain: not split
  EXPECT_EQ(h.dev.raw_sizes, std::vector<size_t>{20 * kMiB});
  std::vector<BlockInfo> blocks = h.cache->snapshot()[0].blocks;
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[1].size, 10 * kMiB + 512 * kKiB);
  EXPECT_EQ(h.cache->stats().allocated_bytes, 20 * kMiB);
  h.cache->free(b);
  void* c = h.cache->allocate(9 * kMiB, kS1);  // 1.5 MiB remain: split
  EXPECT_EQ(c, b);
  EXPECT_EQ(h.cache->snapshot()[0].blocks.size(), 3u);
  EXPECT_EQ(h.cache->stats().allocated_bytes, 18 * kMiB + 512 * kKiB);
  h.cache->free(a);
  h.cache->free(c);
}

TEST(DeviceCache, SmallAndLargePoolsDoNotShareBlocks) {
  Harness h;
  void* s = h.cache->allocate(4 * kKiB, kS1);
  h.cache->free(s);  // a free 2 MiB small segment
  void* l = h.cache->allocate(kMiB + 512 * kKiB, kS1);
  EXPECT_EQ(h.dev.raw_sizes, (std::vector<size_t>{2 * kMiB, 20 * kMiB}));
  EXPECT_GE(addr(l), addr(s) + 2 * kMiB);
  void* s2 = h.cache->allocate(kMiB, kS1);  // small: back to the small segment
  EXPECT_EQ(s2, s);
  void* l2 = h.cache->allocate(2 * kMiB, kS1);  // large: from the 20 MiB segment's rest
  EXPECT_EQ(addr(l2), addr(l) + kMiB + 512 * kKiB);
  EXPECT_EQ(h.cache->stats().num_raw_allocs, 2u);
  const std::vector<SegmentInfo> snap = h.cache->snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_TRUE(snap[0].small);
  EXPECT_FALSE(snap[1].small);
  for (void* p : {s2, l, l2}) h.cache->free(p);
}

TEST(DeviceCache, RequestsAbove10MiBGetTheirOwnRoundedSegment) {
  Harness h;
  void* a = h.cache->allocate(11 * kMiB, kS1);
  void* b = h.cache->allocate(10 * kMiB, kS1);  // at most 10 MiB: a shared 20 MiB segment
  void* c = h.cache->allocate(9 * kMiB, kS1);   // the rest of b's segment
  EXPECT_EQ(h.dev.raw_sizes, (std::vector<size_t>{12 * kMiB, 20 * kMiB}));
  EXPECT_EQ(addr(c), addr(b) + 10 * kMiB);
  EXPECT_EQ(h.cache->stats().reserved_bytes, 32 * kMiB);
  for (void* p : {a, b, c}) h.cache->free(p);
}

TEST(DeviceCache, BlocksServeOnlyTheirOwnStream) {
  Harness h;
  void* p1 = h.cache->allocate(4 * kKiB, kS1);
  h.cache->free(p1);
  void* p2 = h.cache->allocate(4 * kKiB, kS2);
  EXPECT_EQ(h.cache->stats().num_raw_allocs, 2u);
  EXPECT_TRUE(addr(p2) < addr(p1) || addr(p2) >= addr(p1) + 2 * kMiB);
  h.cache->free(p2);
  void* p3 = h.cache->allocate(4 * kKiB, kS1);
  EXPECT_EQ(p3, p1);
  EXPECT_EQ(h.cache->stats().num_raw_allocs, 2u);
  const std::vector<SegmentInfo> snap = h.cache->snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].stream, kS1);
  EXPECT_EQ(snap[1].stream, kS2);
  h.cache->free(p3);
}

TEST(DeviceCache, RecordStreamHoldsTheBlockUntilEveryEventCompletes) {
  Harness h;
  void* p = h.cache->allocate(4 * kKiB, kS1);
  h.cache->record_stream(p, kS2);
  h.cache->record_stream(p, kS2);  // recorded once
  h.cache->record_stream(p, kS1);  // the allocating stream: nothing to wait for
  h.cache->record_stream(p, kS3);
  h.cache->free(p);
  EXPECT_EQ(h.dev.live_events(), 2);
  cuda::MemoryStats s = h.cache->stats();
  EXPECT_EQ(s.pending_free_bytes, 4 * kKiB);
  EXPECT_EQ(s.allocated_bytes, 0u);
  ASSERT_TRUE(h.cache->snapshot()[0].blocks[0].pending);

  void* q = h.cache->allocate(4 * kKiB, kS1);
  EXPECT_NE(q, p);
  h.cache->free(q);
  h.dev.complete(kS2);
  q = h.cache->allocate(4 * kKiB, kS1);
  EXPECT_NE(q, p) << "the event on the third stream has not completed";
  h.cache->free(q);
  h.dev.complete(kS3);
  q = h.cache->allocate(4 * kKiB, kS1);
  EXPECT_EQ(q, p);
  EXPECT_EQ(h.dev.live_events(), 0);
  EXPECT_EQ(h.cache->stats().pending_free_bytes, 0u);
  EXPECT_EQ(h.cache->stats().num_raw_allocs, 1u);
  h.cache->free(q);
  ASSERT_EQ(h.cache->snapshot()[0].blocks.size(), 1u);  // everything merged again
}

TEST(DeviceCache, OutOfMemoryReleasesTheCacheAndRetries) {
  Harness h(64 * kMiB);
  void* a = h.cache->allocate(30 * kMiB, kS1);
  h.cache->free(a);
  EXPECT_EQ(h.cache->stats().reserved_bytes, 30 * kMiB);
  void* b = h.cache->allocate(40 * kMiB, kS1);  // 30 + 40 > 64: the cached 30 MiB go first
  ASSERT_NE(b, nullptr);
  const cuda::MemoryStats s = h.cache->stats();
  EXPECT_EQ(h.dev.failed_allocs, 1);
  EXPECT_EQ(s.num_raw_frees, 1u);
  EXPECT_EQ(s.reserved_bytes, 40 * kMiB);
  EXPECT_EQ(s.peak_reserved_bytes, 40 * kMiB);
  EXPECT_EQ(s.num_ooms, 0u);
  h.cache->free(b);
}

TEST(DeviceCache, OutOfMemoryMessageNamesTheNumbers) {
  Harness h(64 * kMiB, 3);
  void* live = h.cache->allocate(30 * kMiB, kS1);
  h.cache->free(h.cache->allocate(5 * kMiB, kS1));  // a cached free 20 MiB segment
  EXPECT_EQ(h.cache->stats().reserved_bytes, 50 * kMiB);
  test::expect_throws_with([&] { h.cache->allocate(40 * kMiB, kS1); },
                           {"CUDA out of memory on cuda:3", "tried to allocate 40.00 MiB",
                            "30.00 MiB allocated by tensors", "30.00 MiB reserved (cached)",
                            "34.00 MiB free of 64.00 MiB total"});
  EXPECT_EQ(h.dev.failed_allocs, 2);  // before and after releasing the cached segment
  test::expect_throws_with([&] { h.cache->allocate(size_t{1} << 50, kS1); },
                           {"tried to allocate 1073741824.00 MiB"});
  test::expect_throws_with([&] { h.cache->allocate(~size_t{0}, kS1); }, {"CUDA out of memory on cuda:3"});
  EXPECT_EQ(h.cache->stats().num_ooms, 3u);
  h.cache->free(live);  // the cache still works
  h.cache->free(h.cache->allocate(40 * kMiB, kS1));
}

TEST(DeviceCache, StatsAndPeaks) {
  Harness h;
  void* a = h.cache->allocate(kMiB, kS1);
  void* b = h.cache->allocate(3 * kMiB, kS1);
  cuda::MemoryStats s = h.cache->stats();
  EXPECT_EQ(s.allocated_bytes, 4 * kMiB);
  EXPECT_EQ(s.reserved_bytes, 22 * kMiB);
  EXPECT_EQ(s.num_segments, 2u);
  h.cache->free(b);
  s = h.cache->stats();
  EXPECT_EQ(s.allocated_bytes, kMiB);
  EXPECT_EQ(s.peak_allocated_bytes, 4 * kMiB);
  h.cache->reset_peak();
  EXPECT_EQ(h.cache->stats().peak_allocated_bytes, kMiB);  // the reserved peak is 22 MiB still
  h.cache->empty_cache();
  s = h.cache->stats();
  EXPECT_EQ(s.reserved_bytes, 2 * kMiB);
  EXPECT_EQ(s.peak_reserved_bytes, 22 * kMiB);
  EXPECT_EQ(s.num_allocs, 2u);
  EXPECT_EQ(s.num_frees, 1u);
  EXPECT_EQ(s.num_raw_allocs, 2u);
  EXPECT_EQ(s.num_raw_frees, 1u);
  EXPECT_EQ(s.num_segments, 1u);
  h.cache->free(a);
}

TEST(DeviceCache, EmptyCacheReleasesOnlyFullyFreeSegments) {
  Harness h;
  void* small_live = h.cache->allocate(4 * kKiB, kS1);
  h.cache->free(h.cache->allocate(4 * kMiB, kS1));  // fully free large segment
  void* large_live = h.cache->allocate(4 * kMiB, kS2);
  void* held = h.cache->allocate(12 * kMiB, kS3);  // on kS1 it would come from the free segment
  h.cache->record_stream(held, kS2);
  h.cache->free(held);  // free, but waiting for kS2
  EXPECT_EQ(h.dev.allocs.size(), 4u);
  h.cache->empty_cache();
  EXPECT_EQ(h.dev.allocs.size(), 3u);
  EXPECT_EQ(h.cache->stats().reserved_bytes, 2 * kMiB + 20 * kMiB + 12 * kMiB);
  h.dev.complete(kS2);
  h.cache->empty_cache();
  EXPECT_EQ(h.dev.allocs.size(), 2u);
  h.cache->free(small_live);
  h.cache->free(large_live);
  h.cache->empty_cache();
  EXPECT_TRUE(h.dev.allocs.empty());
  EXPECT_EQ(h.cache->stats().reserved_bytes, 0u);
}

TEST(DeviceCache, DoubleFreeAndForeignPointersAreErrors) {
  Harness h;
  void* p = h.cache->allocate(4 * kKiB, kS1);
  h.cache->free(p);
  test::expect_throws_with([&] { h.cache->free(p); }, {"free of", "on cuda:0", "not a live allocation"});
  int local = 0;
  test::expect_throws_with([&] { h.cache->free(&local); }, {"not a live allocation"});
  test::expect_throws_with([&] { h.cache->record_stream(p, kS2); }, {"record_stream", "not a live allocation"});
  EXPECT_EQ(h.cache->stats().num_frees, 1u);
}

TEST(DeviceCache, DestructorReturnsEverySegment) {
  auto h = std::make_unique<Harness>();
  h->cache->allocate(4 * kKiB, kS1);
  void* held = h->cache->allocate(30 * kMiB, kS2);
  h->cache->record_stream(held, kS1);
  h->cache->free(held);
  EXPECT_EQ(h->dev.allocs.size(), 2u);
  h->cache.reset();
  EXPECT_TRUE(h->dev.allocs.empty());
  EXPECT_EQ(h->dev.live_events(), 0);
}

TEST(DeviceCache, ConcurrentUseNeverHandsOutOverlappingBlocks) {
  Harness h;
  std::mutex mu;
  std::map<uintptr_t, size_t> live;  // every block handed out and not yet freed
  std::atomic<int> overlaps{0};
  auto worker = [&](int t) {
    std::mt19937 rng(1234u + static_cast<unsigned>(t));
    std::uniform_int_distribution<int> kind(0, 9);
    const StreamId own = t % 2 == 0 ? kS1 : kS2;
    std::vector<std::pair<void*, size_t>> mine;
    for (int step = 0; step < 10000; ++step) {
      if (mine.size() < 24 && (mine.empty() || kind(rng) < 6)) {
        const int k = kind(rng);
        size_t bytes = k < 6   ? std::uniform_int_distribution<size_t>(1, kMiB)(rng)
                       : k < 9 ? std::uniform_int_distribution<size_t>(kMiB + 1, 10 * kMiB)(rng)
                               : std::uniform_int_distribution<size_t>(10 * kMiB + 1, 24 * kMiB)(rng);
        void* p = h.cache->allocate(bytes, own);
        std::lock_guard<std::mutex> lock(mu);
        auto [it, inserted] = live.emplace(addr(p), bytes);
        if (!inserted) ++overlaps;
        if (it != live.begin() && std::prev(it)->first + std::prev(it)->second > addr(p)) ++overlaps;
        if (std::next(it) != live.end() && addr(p) + bytes > std::next(it)->first) ++overlaps;
        mine.emplace_back(p, bytes);
      } else {
        const size_t i = std::uniform_int_distribution<size_t>(0, mine.size() - 1)(rng);
        void* p = mine[i].first;
        mine[i] = mine.back();
        mine.pop_back();
        if (kind(rng) == 0) h.cache->record_stream(p, own == kS1 ? kS2 : kS1);
        {
          std::lock_guard<std::mutex> lock(mu);
          live.erase(addr(p));
        }
        h.cache->free(p);
      }
      if (step % 97 == 0) h.dev.complete(own == kS1 ? kS2 : kS1);
      if (step % 501 == 0) h.cache->empty_cache();
    }
    std::unique_lock<std::mutex> lock(mu);
    for (auto& [p, bytes] : mine) live.erase(addr(p));
    lock.unlock();
    for (auto& [p, bytes] : mine) h.cache->free(p);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(overlaps.load(), 0);
  h.dev.complete(kS1);
  h.dev.complete(kS2);
  h.cache->empty_cache();
  const cuda::MemoryStats s = h.cache->stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.pending_free_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, 0u);
  EXPECT_EQ(s.num_allocs, s.num_frees);
  EXPECT_GT(s.num_cache_hits, 0u);
  EXPECT_TRUE(h.dev.allocs.empty());
  EXPECT_EQ(h.dev.live_events(), 0);
}

// The public controls name the device they were asked about and fail clearly where it
// does not exist (in a build without CUDA: every device); empty_cache() always works.
TEST(CudaMemoryApi, MissingDeviceIsAClearError) {
  const int missing = cuda::is_available() ? 999 : 0;
  const std::string device = "device cuda:" + std::to_string(missing) + " requested";
  test::expect_throws_with([&] { cuda::memory_stats(missing); }, {"cuda::memory_stats: " + device});
  test::expect_throws_with([&] { cuda::reset_peak_memory_stats(missing); },
                           {"cuda::reset_peak_memory_stats: " + device});
  if (!cuda::compiled()) {
    test::expect_throws_with([&] { cuda::memory_stats(0); }, {"no CUDA backend"});
  }
  EXPECT_NO_THROW(cuda::empty_cache());
}

}  // namespace
}  // namespace zae::detail
