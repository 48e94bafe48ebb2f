#include "engine/allocator.h"

#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace zae {

namespace {
class CpuAllocator final : public Allocator {
 public:
  DataPtr allocate(size_t bytes) override {
    if (bytes == 0) return DataPtr(nullptr, &noop);
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    ZAE_CHECK(p != nullptr, "CPU out of memory: failed to allocate ", bytes, " bytes");
    return DataPtr(p, &std::free);
  }

 private:
  static void noop(void*) {}
};
}  // namespace

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
void synchronize() {}
}  // namespace cuda
#else
Allocator& cpu_allocator() {
  static CpuAllocator cpu;
  return cpu;
}
#endif

}  // namespace zae
