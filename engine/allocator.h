// Allocator interface: every byte of tensor storage comes through one of these.
// CPU memory is 64-byte aligned (cache line, AVX-512 vector). Device::cuda(i) is served
// by a stream-ordered caching allocator (policy: engine/device_cache.h; CUDA side:
// engine/cuda/caching_allocator.h; counters and empty_cache: engine/cuda_memory.h).
// Allocators outlive every allocation.
// The CPU allocator caches freed blocks of at least kCpuCacheMinBytes and hands them
// out again (a training step frees and re-allocates the same large activations every
// step; glibc unmaps them on free, and touching fresh pages costs a page fault each).
// The cache is thread-safe and bounded: at most ZAE_CPU_CACHE_MB MiB (environment,
// read once; default 1024; 0 turns caching off) of free blocks are held; a block is
// reused for a request of at least 3/4 of its size. Cached memory is not zeroed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/device.h"

namespace zae {

/// Owning pointer to raw bytes; the deleter returns them to their allocator.
using DataPtr = std::unique_ptr<void, void (*)(void*)>;

class Allocator {
 public:
  virtual ~Allocator() = default;
  /// `bytes` may be 0 (returns a valid, possibly null, pointer that must not be dereferenced).
  virtual DataPtr allocate(size_t bytes) = 0;
};

inline constexpr size_t kCpuAlignment = 64;

inline constexpr size_t kCpuCacheMinBytes = size_t{1} << 20;

/// Counters of the CPU allocator's block cache (blocks >= kCpuCacheMinBytes only).
struct CpuCacheStats {
  size_t cached_bytes = 0;  ///< bytes held in free cached blocks now
  size_t cached_blocks = 0;
  size_t limit_bytes = 0;  ///< bound on cached_bytes
  uint64_t hits = 0;       ///< large allocations served from the cache
  uint64_t misses = 0;     ///< large allocations that went to the system
};
CpuCacheStats cpu_cache_stats();
/// Returns every cached free block to the system (live allocations are unaffected).
void cpu_empty_cache();
/// Sets the bound on cached free bytes (0 disables caching); frees the cache if it is over.
void cpu_set_cache_limit(size_t bytes);

/// The process-wide allocator for a device (the CUDA one fails clearly where CUDA is absent).
Allocator& allocator_for(Device d);

/// Copies `bytes` from src (on src_dev) to dst (on dst_dev); synchronous on return.
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);

}  // namespace zae
