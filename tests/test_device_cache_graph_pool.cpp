// The private memory pools of the caching policy (engine/device_cache.h) that CUDA graph
// capture uses (engine/cuda/graph.h), through a fake device: allocations of a capture come
// from the pool only and are reused only inside it; a live pool survives empty_cache; its
// release returns the memory (live blocks included) to the general cache and its fully-free
// segments, and only those, to the device; no raw frees or event work during a capture,
// deferred frees; misuse errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>

#include "engine/device_cache.h"
#include "engine/error.h"

namespace zae {
namespace {

namespace pool {
using detail::BlockCache;
using detail::EventId;
using detail::StreamId;
constexpr StreamId kS1 = 0x1000, kS2 = 0x2000, kS3 = 0x3000;
constexpr size_t kMiB = size_t{1} << 20;

struct Device {
  std::map<uintptr_t, size_t> live;
  uintptr_t next = uintptr_t{1} << 40;
  int raw_allocs = 0, raw_frees = 0, events_created = 0, event_queries = 0;
};

class Backend final : public detail::DeviceBackend {
 public:
  explicit Backend(Device& d) : d_(d) {}
  void* raw_alloc(size_t bytes) override {
    const uintptr_t p = d_.next;
    d_.next += bytes + 4 * kMiB;
    d_.live[p] = bytes;
    ++d_.raw_allocs;
    return reinterpret_cast<void*>(p);
  }
  void raw_free(void* ptr) override {
    d_.live.erase(reinterpret_cast<uintptr_t>(ptr));
    ++d_.raw_frees;
  }
  EventId event_create() override { return static_cast<EventId>(++d_.events_created); }
  void event_record(EventId, StreamId) override {}
  bool event_query(EventId) override {
    ++d_.event_queries;
    return true;
  }
  void event_destroy(EventId) override {}
  void mem_info(size_t* f, size_t* t) override { *f = *t = 0; }

 private:
  Device& d_;
};

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }

// The segment holding `p` in the cache's snapshot.
detail::SegmentInfo segment_of(const BlockCache& cache, void* p) {
  for (const auto& seg : cache.snapshot())
    if (addr(p) >= seg.base && addr(p) < seg.base + seg.size) return seg;
  ADD_FAILURE() << "no segment holds " << p;
  return {};
}
}  // namespace pool

TEST(GraphPool, CaptureAllocationsComeFromThePoolAndStayThere) {
  pool::Device dev;
  detail::BlockCache cache(0, std::make_unique<pool::Backend>(dev));
  void* eager = cache.allocate(4096, pool::kS1);  // a general segment on the same stream, with free room
  cache.begin_capture(pool::kS1, 7);
  EXPECT_TRUE(cache.capture_underway());
  void* a = cache.allocate(4096, pool::kS1);
  EXPECT_EQ(pool::segment_of(cache, a).pool, 7u);
  EXPECT_NE(pool::segment_of(cache, a).base, pool::segment_of(cache, eager).base);  // not the general room
  void* other_stream = cache.allocate(4096, pool::kS2);  // streams that do not capture are unaffected
  EXPECT_EQ(pool::segment_of(cache, other_stream).pool, 0u);
  cache.free(a);
  void* b = cache.allocate(4096, pool::kS1);  // freed inside the capture: reused inside it
  EXPECT_EQ(b, a);
  cache.free(b);
  cache.end_capture(pool::kS1);
  EXPECT_FALSE(cache.capture_underway());

  // While the graph lives, eager allocations never get its memory, freed or not...
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool::segment_of(cache, cache.allocate(4096, pool::kS1)).pool, 0u);
  // ...and empty_cache keeps the pool's (fully free) segment.
  const int frees_before = dev.raw_frees;
  cache.empty_cache();
  EXPECT_EQ(dev.raw_frees, frees_before);
  bool pool_segment = false;
  for (const auto& seg : cache.snapshot()) pool_segment |= seg.pool == 7;
  EXPECT_TRUE(pool_segment);

  // The graph is gone: its fully-free segment goes back to the device.
  cache.release_pool(7);
  EXPECT_EQ(dev.raw_frees, frees_before + 1);
  for (const auto& seg : cache.snapshot()) EXPECT_EQ(seg.pool, 0u);
  EXPECT_EQ(dev.live.count(pool::addr(a)), 0u);  // a opened the pool's segment
}

TEST(GraphPool, LiveBlocksOfAReleasedPoolJoinTheGeneralCache) {
  pool::Device dev;
  detail::BlockCache cache(0, std::make_unique<pool::Backend>(dev));
  cache.free(cache.allocate(1000, pool::kS2));  // a fully free general segment: not the pool's to release
  cache.begin_capture(pool::kS1, 3);
  void* kept = cache.allocate(1000, pool::kS1);  // e.g. a static output the user still holds
  void* temp = cache.allocate(1000, pool::kS1);
  cache.free(temp);
  cache.end_capture(pool::kS1);
  cache.release_pool(3);
  EXPECT_EQ(dev.raw_frees, 0);  // the pool's segment still holds `kept`; the general one stays cached
  EXPECT_EQ(pool::segment_of(cache, kept).pool, 0u);
  void* again = cache.allocate(1000, pool::kS1);  // its free room now serves eager allocations
  EXPECT_EQ(pool::segment_of(cache, again).base, pool::segment_of(cache, kept).base);
  cache.free(again);
  cache.free(kept);
  cache.empty_cache();
  EXPECT_TRUE(dev.live.empty());
  EXPECT_EQ(cache.stats().allocated_bytes, 0u);
}

TEST(GraphPool, NoRawFreesOrEventWorkDuringACapture) {
  pool::Device dev;
  detail::BlockCache cache(0, std::make_unique<pool::Backend>(dev));
  void* shared = cache.allocate(2048, pool::kS2);
  cache.record_stream(shared, pool::kS3);
  void* idle = cache.allocate(4 * pool::kMiB, pool::kS2);
  cache.free(idle);  // a fully free large segment
  cache.begin_capture(pool::kS1, 9);
  const int queries = dev.event_queries;
  cache.free(shared);  // used by another stream: deferred, no event now
  EXPECT_EQ(dev.events_created, 0);
  EXPECT_EQ(cache.stats().pending_free_bytes, detail::BlockCache::round_size(2048));
  cache.empty_cache();  // illegal work during capture: nothing happens
  (void)cache.allocate(512, pool::kS1);
  EXPECT_EQ(dev.raw_frees, 0);
  EXPECT_EQ(dev.event_queries, queries);
  cache.end_capture(pool::kS1);  // the deferred free records its event now
  EXPECT_EQ(dev.events_created, 1);
  cache.empty_cache();  // polls the event (done) and frees the idle segments
  EXPECT_EQ(cache.stats().pending_free_bytes, 0u);
  EXPECT_GE(dev.raw_frees, 1);
}

TEST(GraphPool, MisuseIsAClearError) {
  pool::Device dev;
  detail::BlockCache cache(0, std::make_unique<pool::Backend>(dev));
  EXPECT_THROW(cache.begin_capture(pool::kS1, 0), Error);
  cache.begin_capture(pool::kS1, 5);
  EXPECT_THROW(cache.begin_capture(pool::kS1, 6), Error);
  EXPECT_THROW(cache.release_pool(5), Error);  // still capturing into it
  EXPECT_THROW(cache.release_pool(0), Error);
  cache.end_capture(pool::kS1);
  cache.end_capture(pool::kS1);  // a second end is harmless
  cache.release_pool(5);
  cache.release_pool(5);  // nothing left: harmless
}

}  // namespace
}  // namespace zae
