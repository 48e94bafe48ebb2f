// Counters and controls of the CUDA caching allocator (engine/cuda/caching_allocator.cpp,
// policy in engine/device_cache.h). A plain header: it compiles in every build.
// Invariants: allocated_bytes <= reserved_bytes; peaks are >= the current values and
// move only up until reset_peak_memory_stats(); reserved memory is what the allocator
// holds from cudaMalloc, allocated memory is what live tensors hold of it (block sizes,
// rounded up to 512 bytes).
// Without the CUDA backend (-DZAE_CUDA=OFF) there is no CUDA device: the calls that
// name a device fail with a zae::Error, as allocator_for(Device::cuda(i)) does, and
// empty_cache() has nothing to release and returns (as cuda::synchronize() does).
#pragma once

#include <cstddef>
#include <cstdint>

namespace zae::cuda {

/// A snapshot of one device's caching allocator.
struct MemoryStats {
  size_t allocated_bytes = 0;       ///< bytes in blocks held by live allocations now
  size_t reserved_bytes = 0;        ///< bytes in segments obtained from cudaMalloc and not yet freed
  size_t peak_allocated_bytes = 0;  ///< most allocated_bytes since start or reset_peak_memory_stats()
  size_t peak_reserved_bytes = 0;   ///< most reserved_bytes since start or reset_peak_memory_stats()
  size_t pending_free_bytes = 0;    ///< freed blocks held until work on other streams completes
  size_t num_segments = 0;          ///< segments held now
  uint64_t num_allocs = 0;          ///< successful allocations
  uint64_t num_frees = 0;           ///< frees
  uint64_t num_cache_hits = 0;      ///< allocations served from cached memory (no cudaMalloc)
  uint64_t num_raw_allocs = 0;      ///< successful cudaMalloc calls (segments created)
  uint64_t num_raw_frees = 0;       ///< cudaFree calls (segments released)
  uint64_t num_ooms = 0;            ///< allocations that failed with "out of memory"
};

/// The counters of device `device`'s caching allocator (zae::Error for a device that does not exist).
MemoryStats memory_stats(int device);
/// Returns every cached segment that holds no live allocation to the driver, on every device.
void empty_cache();
/// Sets the peaks of device `device` to the current values.
void reset_peak_memory_stats(int device);

}  // namespace zae::cuda
