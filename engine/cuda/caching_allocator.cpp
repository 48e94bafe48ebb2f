// The CUDA backend of the caching allocator: cudaMalloc/cudaFree and timing-free events
// under a DeviceGuard, one BlockCache per device (created on first use, never destroyed),
// and the public controls of engine/cuda_memory.h. DataPtr deleters are plain function
// pointers, so there is one per device index (kDeleters); they never throw.
#include "engine/cuda/caching_allocator.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <utility>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"
#include "engine/cuda_memory.h"
#include "engine/device_cache.h"

namespace zae::cuda {

namespace {
using detail::BlockCache;
using detail::EventId;
using detail::StreamId;

constexpr int kMaxDevices = 64;

cudaStream_t to_stream(StreamId s) { return reinterpret_cast<cudaStream_t>(s); }
cudaEvent_t to_event(EventId e) { return reinterpret_cast<cudaEvent_t>(e); }

class CudaBackend final : public detail::DeviceBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {}

  void* raw_alloc(size_t bytes) override {
    DeviceGuard guard(device_);
    void* p = nullptr;
    // A segment for a private pool may be needed in the middle of a graph capture, where
    // the thread's capture mode forbids cudaMalloc: relax it for this call only.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    cudaError_t err = cudaMalloc(&p, bytes);
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: clear it so later checks do not see it
      return nullptr;
    }
    CUDA_CHECK(err);
    return p;
  }

  void raw_free(void* ptr) override {
    DeviceGuard guard(device_);
    CUDA_CHECK(cudaFree(ptr));  // synchronizes the device: no queued work still uses ptr
  }

  EventId event_create() override {
    DeviceGuard guard(device_);
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return reinterpret_cast<EventId>(e);
  }

  void event_record(EventId event, StreamId stream) override {
    DeviceGuard guard(device_);
    CUDA_CHECK(cudaEventRecord(to_event(event), to_stream(stream)));
  }

  bool event_query(EventId event) override {
    DeviceGuard guard(device_);
    cudaError_t err = cudaEventQuery(to_event(event));
    if (err == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    CUDA_CHECK(err);
    return true;
  }

  void event_destroy(EventId event) override {
    DeviceGuard guard(device_);
    CUDA_CHECK(cudaEventDestroy(to_event(event)));
  }

  void mem_info(size_t* free_bytes, size_t* total_bytes) override {
    DeviceGuard guard(device_);
    if (cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      *free_bytes = *total_bytes = 0;
    }
  }

 private:
  int device_;
};

void check_device(const char* op, int device) {
  const int n = device_count();
  ZAE_CHECK(n > 0, op, ": device cuda:", device, " requested, but no CUDA device is available");
  ZAE_CHECK(device >= 0 && device < n && device < kMaxDevices, op, ": device cuda:", device,
            " requested, but only ", n, " CUDA device(s) exist");
}

std::array<std::once_flag, kMaxDevices> g_once;
std::array<std::atomic<BlockCache*>, kMaxDevices> g_caches{};

// Device `device`'s cache, created on first use (the index must have been checked).
BlockCache& device_cache(int device) {
  const auto i = static_cast<size_t>(device);
  std::call_once(g_once[i], [&] {
    g_caches[i].store(new BlockCache(device, std::make_unique<CudaBackend>(device)), std::memory_order_release);
  });
  return *g_caches[i].load(std::memory_order_acquire);
}

template <int D>
void free_on(void* ptr) {
  if (ptr == nullptr) return;
  try {
    device_cache(D).free(ptr);
  } catch (const std::exception& e) {  // deleters never throw
    std::fprintf(stderr, "zae: freeing CUDA memory on cuda:%d failed: %s\n", D, e.what());
  }
}

template <size_t... I>
constexpr std::array<void (*)(void*), sizeof...(I)> make_deleters(std::index_sequence<I...>) {
  return {&free_on<static_cast<int>(I)>...};
}
constexpr auto kDeleters = make_deleters(std::make_index_sequence<kMaxDevices>{});

void noop(void*) {}

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device) : device_(device), cache_(device_cache(device)) {}
  DataPtr allocate(size_t bytes) override {
    if (bytes == 0) return DataPtr(nullptr, &noop);
    const auto stream = reinterpret_cast<StreamId>(current_stream(device_));
    return DataPtr(cache_.allocate(bytes, stream), kDeleters[static_cast<size_t>(device_)]);
  }

 private:
  int device_;
  BlockCache& cache_;
};
}  // namespace

Allocator& caching_allocator(int device) {
  check_device("cuda::caching_allocator", device);
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<std::atomic<CachingAllocator*>, kMaxDevices> allocators{};
  const auto i = static_cast<size_t>(device);
  std::call_once(once[i], [&] { allocators[i].store(new CachingAllocator(device), std::memory_order_release); });
  return *allocators[i].load(std::memory_order_acquire);
}

void record_stream(const void* ptr, int device, cudaStream_t stream) {
  check_device("cuda::record_stream", device);
  device_cache(device).record_stream(ptr, reinterpret_cast<StreamId>(stream));
}

uint64_t graph_pool_handle() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void begin_allocate_to_pool(int device, cudaStream_t stream, uint64_t pool) {
  check_device("cuda::begin_allocate_to_pool", device);
  device_cache(device).begin_capture(reinterpret_cast<StreamId>(stream), pool);
}

void end_allocate_to_pool(int device, cudaStream_t stream) noexcept {
  if (device < 0 || device >= kMaxDevices) return;
  if (BlockCache* cache = g_caches[static_cast<size_t>(device)].load(std::memory_order_acquire))
    cache->end_capture(reinterpret_cast<StreamId>(stream));
}

void release_pool(int device, uint64_t pool) {
  check_device("cuda::release_pool", device);
  device_cache(device).release_pool(pool);
}

MemoryStats memory_stats(int device) {
  check_device("cuda::memory_stats", device);
  return device_cache(device).stats();
}

void empty_cache() {
  for (auto& slot : g_caches) {
    if (BlockCache* cache = slot.load(std::memory_order_acquire)) cache->empty_cache();
  }
}

void reset_peak_memory_stats(int device) {
  check_device("cuda::reset_peak_memory_stats", device);
  device_cache(device).reset_peak();
}

}  // namespace zae::cuda
