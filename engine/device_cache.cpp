// BlockCache: free blocks live in two size-ordered sets (small and large pool) keyed by
// (pool, stream, size, address), so a best-fit lookup for a pool and stream is one
// lower_bound (pool 0 is the general cache; a private pool is a separate key range). Each
// block links to its address neighbours in its segment; a segment's first block is
// never merged away, so it stays the segment's handle in segments_.
#include "engine/device_cache.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "engine/error.h"

namespace zae::detail {

struct BlockCache::Block {
  Block(char* p, size_t s, StreamId st, bool sm, PoolId pl) : ptr(p), size(s), stream(st), small(sm), pool(pl) {}
  char* ptr;
  size_t size;
  StreamId stream;
  bool small;
  PoolId pool;  // the segment's private pool (0: general cache); the same for all its blocks
  bool allocated = false;
  int event_count = 0;  // pending events this freed block waits for
  Block* prev = nullptr;
  Block* next = nullptr;
  std::vector<StreamId> stream_uses;  // other streams recorded while allocated

  bool available() const { return !allocated && event_count == 0; }
};

bool BlockCache::BlockOrder::operator()(const Block* a, const Block* b) const {
  if (a->pool != b->pool) return a->pool < b->pool;
  if (a->stream != b->stream) return a->stream < b->stream;
  if (a->size != b->size) return a->size < b->size;
  return reinterpret_cast<uintptr_t>(a->ptr) < reinterpret_cast<uintptr_t>(b->ptr);
}

namespace {
// Larger requests cannot be rounded without overflow; no device has this much memory.
constexpr size_t kMaxRequest = size_t{1} << 62;

std::string mib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(bytes) / static_cast<double>(size_t{1} << 20));
  return buf;
}
}  // namespace

BlockCache::BlockCache(int device, std::unique_ptr<DeviceBackend> backend)
    : device_(device), backend_(std::move(backend)) {
  ZAE_CHECK(backend_ != nullptr, "BlockCache for cuda:", device, ": no backend given");
}

BlockCache::~BlockCache() {
  // Destructors never throw: a failing backend call leaks what it was releasing.
  for (auto& [event, block] : pending_) {
    try {
      backend_->event_destroy(event);
    } catch (...) {
    }
  }
  for (auto& [base, head] : segments_) {
    try {
      backend_->raw_free(head->ptr);
    } catch (...) {
    }
    for (Block* b = head; b != nullptr;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
}

size_t BlockCache::round_size(size_t bytes) {
  if (bytes < kMinBlock) return kMinBlock;
  return (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
}

size_t BlockCache::segment_size(size_t rounded) {
  if (rounded <= kSmallSize) return kSmallSegment;
  if (rounded <= kMinLargeAlloc) return kLargeSegment;
  return (rounded + kRoundLarge - 1) / kRoundLarge * kRoundLarge;
}

void* BlockCache::allocate(size_t bytes, StreamId stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (captures_.empty()) process_events_locked();  // event queries are illegal during capture
  if (bytes > kMaxRequest) throw_oom_locked(bytes);
  const size_t rounded = round_size(bytes);
  auto cap = captures_.find(stream);
  const PoolId pool = cap == captures_.end() ? 0 : cap->second;
  Block* block = find_free_locked(rounded, stream, pool);
  if (block != nullptr) {
    ++stats_.num_cache_hits;
  } else {
    block = new_segment_locked(bytes, rounded, stream, pool);
  }
  return take_locked(block, rounded);
}

void BlockCache::free(void* ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  ZAE_CHECK(it != live_.end(), "free of ", ptr, " on cuda:", device_,
            ": not a live allocation of this cache (a double free, or memory allocated elsewhere)");
  Block* block = it->second;
  if (!captures_.empty() && !block->stream_uses.empty()) {
    // No events during a capture: the block stays `allocated` (unusable) until the last
    // capture ends, and counts as pending meanwhile.
    live_.erase(it);
    stats_.allocated_bytes -= block->size;
    ++stats_.num_frees;
    stats_.pending_free_bytes += block->size;
    deferred_.push_back(block);
    return;
  }
  // Record every event before changing any state: if the backend fails, the block
  // stays allocated (leaked, but never handed out while other streams may use it).
  const std::vector<EventId> events = record_uses_locked(block);
  live_.erase(it);
  stats_.allocated_bytes -= block->size;
  ++stats_.num_frees;
  release_locked(block, events);
}

std::vector<EventId> BlockCache::record_uses_locked(Block* block) {
  std::vector<EventId> events;
  try {
    for (StreamId s : block->stream_uses) {
      events.push_back(backend_->event_create());
      backend_->event_record(events.back(), s);
    }
  } catch (...) {
    for (EventId e : events) {
      try {
        backend_->event_destroy(e);
      } catch (...) {
      }
    }
    throw;
  }
  return events;
}

void BlockCache::release_locked(Block* block, const std::vector<EventId>& events) {
  block->allocated = false;
  block->stream_uses.clear();
  if (events.empty()) {
    free_block_locked(block);
    return;
  }
  for (EventId e : events) pending_.emplace_back(e, block);
  block->event_count = static_cast<int>(events.size());
  stats_.pending_free_bytes += block->size;
}

void BlockCache::begin_capture(StreamId stream, PoolId pool) {
  std::lock_guard<std::mutex> lock(mu_);
  ZAE_CHECK(pool != 0, "BlockCache::begin_capture on cuda:", device_, ": pool 0 is the general cache, not a private pool");
  ZAE_CHECK(captures_.find(stream) == captures_.end(), "BlockCache::begin_capture on cuda:", device_, ": stream ",
            reinterpret_cast<const void*>(stream), " is already capturing (into pool ", captures_[stream], ")");
  captures_.emplace(stream, pool);
}

void BlockCache::end_capture(StreamId stream) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  captures_.erase(stream);
  if (!captures_.empty()) return;
  std::vector<Block*> deferred;
  deferred.swap(deferred_);
  for (Block* block : deferred) {
    stats_.pending_free_bytes -= block->size;
    try {
      release_locked(block, record_uses_locked(block));
    } catch (const std::exception& e) {  // never throws: the block leaks (stays allocated)
      std::fprintf(stderr, "zae: cuda:%d: recording a deferred free's events failed (%s); %zu bytes leak\n", device_,
                   e.what(), block->size);
    }
  }
}

void BlockCache::release_pool(PoolId pool) {
  std::lock_guard<std::mutex> lock(mu_);
  ZAE_CHECK(pool != 0, "BlockCache::release_pool on cuda:", device_, ": pool 0 is the general cache");
  for (const auto& [stream, p] : captures_)
    ZAE_CHECK(p != pool, "BlockCache::release_pool on cuda:", device_, ": pool ", pool,
              " is still being captured into (on stream ", reinterpret_cast<const void*>(stream), ")");
  for (auto it = segments_.begin(); it != segments_.end();) {
    Block* head = it->second;
    if (head->pool != pool) {
      ++it;
      continue;
    }
    for (Block* b = head; b != nullptr; b = b->next) {
      Pool& set = pool_of(b->small);
      const bool listed = b->available() && set.erase(b) > 0;  // the key changes: re-insert
      b->pool = 0;
      if (listed) set.insert(b);
    }
    if (!captures_.empty() || !head->available() || head->next != nullptr) {
      ++it;
      continue;
    }
    backend_->raw_free(head->ptr);  // a fully-free segment of the pool (as release_cached_locked)
    pool_of(head->small).erase(head);
    stats_.reserved_bytes -= head->size;
    ++stats_.num_raw_frees;
    delete head;
    it = segments_.erase(it);
  }
}

bool BlockCache::capture_underway() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !captures_.empty();
}

void BlockCache::record_stream(const void* ptr, StreamId stream) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  ZAE_CHECK(it != live_.end(), "record_stream of ", ptr, " on cuda:", device_,
            ": not a live allocation of this cache");
  Block* block = it->second;
  if (stream == block->stream) return;
  auto& uses = block->stream_uses;
  if (std::find(uses.begin(), uses.end(), stream) == uses.end()) uses.push_back(stream);
}

void BlockCache::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!captures_.empty()) return;  // raw frees and event queries are illegal during capture
  process_events_locked();
  release_cached_locked();
}

cuda::MemoryStats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  cuda::MemoryStats s = stats_;
  s.num_segments = segments_.size();
  return s;
}

void BlockCache::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

std::vector<SegmentInfo> BlockCache::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SegmentInfo> out;
  out.reserve(segments_.size());
  for (const auto& [base, head] : segments_) {
    SegmentInfo seg;
    seg.base = base;
    seg.stream = head->stream;
    seg.small = head->small;
    seg.pool = head->pool;
    for (const Block* b = head; b != nullptr; b = b->next) {
      seg.blocks.push_back({static_cast<size_t>(b->ptr - head->ptr), b->size, b->allocated, b->event_count > 0});
      seg.size += b->size;
    }
    out.push_back(std::move(seg));
  }
  return out;
}

BlockCache::Block* BlockCache::find_free_locked(size_t rounded, StreamId stream, PoolId pool_id) {
  Pool& pool = pool_of(rounded <= kSmallSize);
  Block key(nullptr, rounded, stream, false, pool_id);
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream || (*it)->pool != pool_id) return nullptr;
  Block* block = *it;
  pool.erase(it);
  return block;
}

BlockCache::Block* BlockCache::new_segment_locked(size_t bytes, size_t rounded, StreamId stream, PoolId pool) {
  const size_t size = segment_size(rounded);
  auto block = std::make_unique<Block>(nullptr, size, stream, rounded <= kSmallSize, pool);
  void* ptr = backend_->raw_alloc(size);
  if (ptr == nullptr && captures_.empty()) {  // the cache may hold what the device is missing
    release_cached_locked();
    ptr = backend_->raw_alloc(size);
  }
  if (ptr == nullptr) throw_oom_locked(bytes);
  block->ptr = static_cast<char*>(ptr);
  segments_.emplace(reinterpret_cast<uintptr_t>(ptr), block.get());
  stats_.reserved_bytes += size;
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  ++stats_.num_raw_allocs;
  return block.release();
}

void* BlockCache::take_locked(Block* block, size_t rounded) {
  const size_t rest = block->size - rounded;
  const bool split = block->small ? rest >= kMinBlock : rest > kSmallSize;
  if (split) {
    auto* tail = new Block(block->ptr + rounded, rest, block->stream, block->small, block->pool);
    tail->prev = block;
    tail->next = block->next;
    if (block->next != nullptr) block->next->prev = tail;
    block->next = tail;
    block->size = rounded;
    pool_of(tail->small).insert(tail);
  }
  block->allocated = true;
  live_.emplace(block->ptr, block);
  stats_.allocated_bytes += block->size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  ++stats_.num_allocs;
  return block->ptr;
}

void BlockCache::free_block_locked(Block* block) {
  Pool& pool = pool_of(block->small);
  if (Block* prev = block->prev; prev != nullptr && prev->available()) {  // prev absorbs block
    pool.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    delete block;
    block = prev;
  }
  if (Block* next = block->next; next != nullptr && next->available()) {  // block absorbs next
    pool.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    delete next;
  }
  pool.insert(block);
}

void BlockCache::process_events_locked() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!backend_->event_query(it->first)) {
      ++it;
      continue;
    }
    backend_->event_destroy(it->first);
    Block* block = it->second;
    it = pending_.erase(it);
    if (--block->event_count == 0) {
      stats_.pending_free_bytes -= block->size;
      free_block_locked(block);
    }
  }
}

void BlockCache::release_cached_locked() {
  for (auto it = segments_.begin(); it != segments_.end();) {
    Block* head = it->second;
    if (!head->available() || head->next != nullptr || head->pool != 0) {  // a live graph's pool stays
      ++it;
      continue;
    }
    backend_->raw_free(head->ptr);  // first: if it throws, nothing has changed
    pool_of(head->small).erase(head);
    stats_.reserved_bytes -= head->size;
    ++stats_.num_raw_frees;
    delete head;
    it = segments_.erase(it);
  }
}

void BlockCache::throw_oom_locked(size_t bytes) {
  ++stats_.num_ooms;
  size_t free_bytes = 0, total_bytes = 0;
  try {
    backend_->mem_info(&free_bytes, &total_bytes);
  } catch (...) {  // the message matters more than the numbers
  }
  ZAE_FAIL("CUDA out of memory on cuda:", device_, ": tried to allocate ", mib(bytes), "; ",
           mib(stats_.allocated_bytes), " allocated by tensors, ", mib(stats_.reserved_bytes),
           " reserved (cached), ", mib(free_bytes), " free of ", mib(total_bytes), " total (reported by the backend)");
}

}  // namespace zae::detail
