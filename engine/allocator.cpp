#include "engine/allocator.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "engine/error.h"

namespace zae {

namespace {

// Free large blocks by capacity. A large block is [header (kCpuAlignment bytes) | data]:
// the header holds the data capacity, so the deleter (a plain function pointer) finds
// it. Never destroyed (leaked on purpose): tensors may be freed during static destruction.
class BlockCache {
 public:
  BlockCache() {
    size_t mb = 1024;
    if (const char* env = std::getenv("ZAE_CPU_CACHE_MB")) mb = std::strtoull(env, nullptr, 10);
    limit_ = mb << 20;
  }

  // A cached block of capacity in [bytes, bytes * 4 / 3], or null.
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.lower_bound(bytes);
    if (it == free_.end() || it->first > bytes + bytes / 3) {
      ++misses_;
      return nullptr;
    }
    void* data = it->second;
    cached_ -= it->first;
    free_.erase(it);
    ++hits_;
    return data;
  }

  // Keeps the block if it fits under the limit (emptying the cache first if needed).
  void give(void* data, size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (capacity <= limit_) {
        if (cached_ + capacity > limit_) release_locked();
        free_.emplace(capacity, data);
        cached_ += capacity;
        return;
      }
    }
    std::free(base_of(data));
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }

  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = bytes;
    if (cached_ > limit_) release_locked();
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {cached_, free_.size(), limit_, hits_, misses_};
  }

  static void* base_of(void* data) { return static_cast<char*>(data) - kCpuAlignment; }

 private:
  void release_locked() {
    for (auto& [cap, data] : free_) std::free(base_of(data));
    free_.clear();
    cached_ = 0;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0, limit_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache();
  return *cache;
}

void free_large(void* data) {
  if (data == nullptr) return;
  size_t capacity = 0;
  std::memcpy(&capacity, BlockCache::base_of(data), sizeof(capacity));
  block_cache().give(data, capacity);
}

class CpuAllocator final : public Allocator {
 public:
  DataPtr allocate(size_t bytes) override {
    if (bytes == 0) return DataPtr(nullptr, &noop);
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded >= kCpuCacheMinBytes) {
      if (void* data = block_cache().take(rounded)) return DataPtr(data, &free_large);
      void* base = std::aligned_alloc(kCpuAlignment, rounded + kCpuAlignment);
      if (base == nullptr) {  // the cache may hold what the system is missing
        block_cache().release();
        base = std::aligned_alloc(kCpuAlignment, rounded + kCpuAlignment);
      }
      ZAE_CHECK(base != nullptr, "CPU out of memory: failed to allocate ", bytes, " bytes");
      std::memcpy(base, &rounded, sizeof(rounded));
      return DataPtr(static_cast<char*>(base) + kCpuAlignment, &free_large);
    }
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    ZAE_CHECK(p != nullptr, "CPU out of memory: failed to allocate ", bytes, " bytes");
    return DataPtr(p, &std::free);
  }

 private:
  static void noop(void*) {}
};
}  // namespace

CpuCacheStats cpu_cache_stats() { return block_cache().stats(); }
void cpu_empty_cache() { block_cache().release(); }
void cpu_set_cache_limit(size_t bytes) { block_cache().set_limit(bytes); }

#ifndef ZAE_WITH_CUDA
Allocator& allocator_for(Device d) {
  static CpuAllocator cpu;
  ZAE_CHECK(d.is_cpu(), "device ", d, " requested, but this build of zae has no CUDA backend (rebuild with -DZAE_CUDA=ON)");
  return cpu;
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  ZAE_CHECK(dst_dev.is_cpu() && src_dev.is_cpu(), "copy between ", src_dev, " and ", dst_dev,
            ": this build of zae has no CUDA backend");
  if (bytes) std::memcpy(dst, src, bytes);
}

namespace cuda {
bool compiled() { return false; }
int device_count() { return 0; }
bool is_available() { return false; }
int compute_capability(int index) { ZAE_FAIL("cuda:", index, " requested, but this build of zae has no CUDA backend"); }
void synchronize() {}
}  // namespace cuda
#else
Allocator& cpu_allocator() {
  static CpuAllocator cpu;
  return cpu;
}
#endif

}  // namespace zae
