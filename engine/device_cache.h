// BlockCache: the stream-ordered caching policy behind the CUDA allocator, written
// against an injected DeviceBackend so that it builds (and is tested) without CUDA.
//
// Policy:
// - Requests are rounded up to kMinBlock (512 B; 0 counts as 512 B). Rounded requests
//   of at most kSmallSize (1 MiB) come from the small pool, whose segments are
//   kSmallSegment (2 MiB); larger ones from the large pool, whose segments are
//   kLargeSegment (20 MiB) for requests up to kMinLargeAlloc (10 MiB), and exactly the
//   request rounded up to kRoundLarge (2 MiB) beyond that.
// - Every block belongs to the stream it was first carved for (its segment's stream)
//   and serves only allocations on that stream; a stream-ordered program then never
//   needs a synchronisation to reuse memory.
// - A free request is served by the smallest free block of its pool and stream that
//   fits (best fit over a size-ordered set). The block is split when the rest is at
//   least kMinBlock (small pool) or more than kSmallSize (large pool).
// - On free, a block merges with its free neighbours in the same segment.
// - record_stream(p, s): when p is freed, an event is recorded on every such other
//   stream s and the block stays unusable until all of them have completed (polled
//   at each allocation and by empty_cache()).
// - Private pools (CUDA graph capture, engine/cuda/graph.h): between begin_capture(s, P)
//   and end_capture(s), allocations on stream s are served from private pool P (P != 0)
//   only: its segments are created for P and their blocks, freed or not, are never handed
//   to an allocation outside P, so the memory a captured graph baked in stays reserved
//   while the graph lives. release_pool(P) (the graph is gone) returns P's segments to
//   the general cache of their stream and their fully-free segments to the backend.
//   While any capture is underway the cache never calls the backend's raw_free or
//   event_query (both illegal during capture): empty_cache() does nothing, pending
//   events are not polled, an out-of-memory retry is skipped, and a block freed with
//   record_stream uses is deferred until the last capture ends.
// - When the backend is out of memory, every fully-free segment is returned and the
//   backend is asked once more; then a zae::Error "CUDA out of memory on cuda:N: ..."
//   names the request, what is allocated, reserved and what the backend reports free.
// Invariants: the blocks of a segment tile it exactly, in address order; two adjacent
// free blocks are never both in a pool (they are merged); allocated_bytes <=
// reserved_bytes; every pointer returned is kMinBlock-aligned relative to its segment.
// All public members are thread-safe (one mutex; backend calls run under it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/cuda_memory.h"

namespace zae::detail {

/// An opaque stream identifier (a cudaStream_t cast to an integer; 0 = legacy default stream).
using StreamId = uintptr_t;
/// An opaque event handle created by a DeviceBackend.
using EventId = uintptr_t;
/// A private memory pool (graph capture); 0 is the general cache.
using PoolId = uint64_t;

/// Raw device memory and events for one device. Called with the cache's mutex held.
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  /// `bytes` of device memory, or nullptr when the device is out of memory (other failures throw).
  virtual void* raw_alloc(size_t bytes) = 0;
  /// Returns a pointer from raw_alloc (called only when no work uses it any more).
  virtual void raw_free(void* ptr) = 0;
  virtual EventId event_create() = 0;
  /// Records `event` on `stream`: it completes when the work queued there so far is done.
  virtual void event_record(EventId event, StreamId stream) = 0;
  /// Whether the work before the event's last record has completed.
  virtual bool event_query(EventId event) = 0;
  virtual void event_destroy(EventId event) = 0;
  /// Free and total device memory as the driver reports them (for the out-of-memory message).
  virtual void mem_info(size_t* free_bytes, size_t* total_bytes) = 0;
};

/// One block of one segment, as snapshot() reports it.
struct BlockInfo {
  size_t offset = 0;  ///< from the segment's base
  size_t size = 0;
  bool allocated = false;  ///< held by a live allocation
  bool pending = false;    ///< freed, waiting for events on other streams
};

/// One segment (one raw allocation) and its blocks in address order.
struct SegmentInfo {
  uintptr_t base = 0;
  size_t size = 0;
  StreamId stream = 0;
  bool small = false;  ///< belongs to the small pool
  PoolId pool = 0;     ///< the private pool it was created for (0: the general cache)
  std::vector<BlockInfo> blocks;
};

/// The caching allocator of one device (see the file comment for the policy).
class BlockCache {
 public:
  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallSize = size_t{1} << 20;
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kLargeSegment = size_t{20} << 20;
  static constexpr size_t kMinLargeAlloc = size_t{10} << 20;
  static constexpr size_t kRoundLarge = size_t{2} << 20;

  /// `device` only names the device in messages.
  BlockCache(int device, std::unique_ptr<DeviceBackend> backend);
  /// Destroys pending events and returns every segment to the backend (live pointers dangle).
  ~BlockCache();
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  /// A block of at least `bytes` usable by work on `stream`; zae::Error when out of memory.
  void* allocate(size_t bytes, StreamId stream);
  /// Returns a pointer from allocate(); zae::Error for a pointer that is not live here
  /// (never allocated here, or already freed).
  void free(void* ptr);
  /// Marks the live block at `ptr` as used by `stream` too (see the file comment).
  void record_stream(const void* ptr, StreamId stream);
  /// Returns every fully-free segment to the backend (after polling pending events).
  void empty_cache();
  cuda::MemoryStats stats() const;
  /// Sets the peaks to the current values.
  void reset_peak();
  /// Every segment with its blocks, ordered by base address.
  std::vector<SegmentInfo> snapshot() const;

  // ---- private pools (graph capture; see the file comment) ----------------------
  /// Serves allocations on `stream` from private pool `pool` (!= 0) until end_capture;
  /// zae::Error when `pool` is 0 or `stream` is already capturing.
  void begin_capture(StreamId stream, PoolId pool);
  /// Ends begin_capture on `stream` (no-op when it is not capturing); the last capture
  /// to end frees the deferred blocks. Never throws (a failing backend leaks a block).
  void end_capture(StreamId stream) noexcept;
  /// The graph that owned `pool` is gone: its segments join the general cache and the
  /// fully-free ones go back to the backend (unless a capture is underway). zae::Error
  /// when `pool` is 0 or a capture into it is underway.
  void release_pool(PoolId pool);
  /// Whether any stream is capturing.
  bool capture_underway() const;

  /// `bytes` rounded up to a multiple of kMinBlock (at least kMinBlock).
  static size_t round_size(size_t bytes);
  /// The size of the segment created for a rounded request.
  static size_t segment_size(size_t rounded);

 private:
  struct Block;
  struct BlockOrder {
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, BlockOrder>;

  Pool& pool_of(bool small) { return small ? small_pool_ : large_pool_; }
  Block* find_free_locked(size_t rounded, StreamId stream, PoolId pool);
  Block* new_segment_locked(size_t bytes, size_t rounded, StreamId stream, PoolId pool);
  std::vector<EventId> record_uses_locked(Block* block);
  void release_locked(Block* block, const std::vector<EventId>& events);
  void* take_locked(Block* block, size_t rounded);
  void free_block_locked(Block* block);
  void process_events_locked();
  void release_cached_locked();
  [[noreturn]] void throw_oom_locked(size_t bytes);

  const int device_;
  std::unique_ptr<DeviceBackend> backend_;
  mutable std::mutex mu_;
  Pool small_pool_, large_pool_;
  std::map<uintptr_t, Block*> segments_;        // base -> first block (it never changes)
  std::unordered_map<const void*, Block*> live_;  // allocated blocks by pointer
  std::deque<std::pair<EventId, Block*>> pending_;  // events a freed block waits for
  std::unordered_map<StreamId, PoolId> captures_;   // capturing streams -> their private pool
  std::vector<Block*> deferred_;  // freed during a capture with other streams' uses (still `allocated`)
  cuda::MemoryStats stats_;
};

}  // namespace zae::detail
