// The CUDA device allocator: one stream-ordered caching BlockCache (engine/device_cache.h)
// per device, created on first use and never destroyed (tensors may be freed during
// static destruction). Memory is allocated for the allocating thread's current stream
// (engine/cuda/stream.h) and reused only by work on that stream, unless record_stream
// says otherwise. CUDA-only header: include it from .cu files and engine/cuda/*.cpp only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/allocator.h"

namespace zae::cuda {

/// The caching allocator of device `device` (a valid device index; see allocator_for).
/// allocate(0) returns a null pointer; other requests are served on current_stream(device).
Allocator& caching_allocator(int device);

/// Declares that work on `stream` uses the live allocation `ptr` of device `device`
/// (memory from caching_allocator(device), allocated on another stream). When it is
/// freed, an event is recorded on `stream` and the memory is not reused before all
/// work queued there up to the free has completed. zae::Error when `ptr` is not a live
/// allocation of that device; recording the allocating stream itself does nothing.
void record_stream(const void* ptr, int device, cudaStream_t stream);

// ---- private pools for graph capture (engine/cuda/graph.h, policy in device_cache.h) ----
/// A fresh private pool id (never 0, never returned twice in this process).
uint64_t graph_pool_handle();
/// Serves device `device`'s allocations on `stream` from private pool `pool` until
/// end_allocate_to_pool; zae::Error when the stream is already capturing.
void begin_allocate_to_pool(int device, cudaStream_t stream, uint64_t pool);
/// Ends begin_allocate_to_pool (never throws).
void end_allocate_to_pool(int device, cudaStream_t stream) noexcept;
/// The graph owning `pool` is gone: its memory returns to the general cache (fully-free
/// segments to the driver). Call it only when no replay using the pool is in flight.
void release_pool(int device, uint64_t pool);

}  // namespace zae::cuda
