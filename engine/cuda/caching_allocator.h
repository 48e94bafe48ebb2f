// The CUDA device allocator: one stream-ordered caching BlockCache (engine/device_cache.h)
// per device, created on first use and never destroyed (tensors may be freed during
// static destruction). Memory is allocated for the allocating thread's current stream
// (engine/cuda/stream.h) and reused only by work on that stream, unless record_stream
// says otherwise. CUDA-only header: include it from .cu files and engine/cuda/*.cpp only.
#pragma once

#include <cuda_runtime.h>

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

}  // namespace zae::cuda
