// engine/cuda_memory.h without the CUDA backend: there is no CUDA device, so the calls
// that name one fail as allocator_for(Device::cuda(i)) does, and there is no cache to
// empty. With the backend, engine/cuda/caching_allocator.cpp defines these.
#include "engine/cuda_memory.h"

#ifndef ZAE_WITH_CUDA
#include "engine/error.h"

namespace zae::cuda {

MemoryStats memory_stats(int device) {
  ZAE_FAIL("cuda::memory_stats: device cuda:", device,
           " requested, but this build of zae has no CUDA backend (rebuild with -DZAE_CUDA=ON)");
}

void empty_cache() {}

void reset_peak_memory_stats(int device) {
  ZAE_FAIL("cuda::reset_peak_memory_stats: device cuda:", device,
           " requested, but this build of zae has no CUDA backend (rebuild with -DZAE_CUDA=ON)");
}

}  // namespace zae::cuda
#endif
