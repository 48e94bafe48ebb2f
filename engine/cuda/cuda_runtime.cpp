// CUDA runtime glue for the engine: device queries, a plain cudaMalloc allocator
// per device (the stream-ordered caching allocator replaces it in the CUDA
// backend issue), and byte copies between any two devices.
#include <cstring>
#include <mutex>
#include <vector>

#include "engine/allocator.h"
#include "engine/cuda/cuda_check.h"

namespace zae {

Allocator& cpu_allocator();

namespace cuda {
bool compiled() { return true; }

int device_count() {
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky "no driver/device" error
      return 0;
    }
    return n;
  }();
  return count;
}

bool is_available() { return device_count() > 0; }

void synchronize() {
  if (is_available()) CUDA_CHECK(cudaDeviceSynchronize());
}
}  // namespace cuda

namespace {
void check_device(Device d) {
  int n = cuda::device_count();
  ZAE_CHECK(n > 0, "device ", d, " requested, but no CUDA device is available");
  ZAE_CHECK(d.index >= 0 && d.index < n, "device ", d, " requested, but only ", n, " CUDA device(s) exist");
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != index) CUDA_CHECK(cudaSetDevice(index));
  }
  ~DeviceGuard() { (void)cudaSetDevice(prev_); }

 private:
  int prev_ = 0;
};

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) {}
  DataPtr allocate(size_t bytes) override {
    if (bytes == 0) return DataPtr(nullptr, &noop);
    DeviceGuard guard(index_);
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      ZAE_FAIL("CUDA out of memory on cuda:", index_, ": requested ", bytes, " bytes, ", free_b,
               " bytes free of ", total_b, " (", cudaGetErrorString(err), ")");
    }
    return DataPtr(p, &release);
  }

 private:
  static void noop(void*) {}
  static void release(void* p) { (void)cudaFree(p); }  // destructors never throw
  int index_;
};
}  // namespace

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  check_device(d);
  static std::mutex mu;
  static std::vector<std::unique_ptr<CudaAllocator>> per_device;
  std::lock_guard<std::mutex> lock(mu);
  if (per_device.empty()) per_device.resize(static_cast<size_t>(cuda::device_count()));
  auto& slot = per_device[static_cast<size_t>(d.index)];
  if (!slot) slot = std::make_unique<CudaAllocator>(d.index);
  return *slot;
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  if (dst_dev.is_cuda()) check_device(dst_dev);
  if (src_dev.is_cuda()) check_device(src_dev);
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
    CUDA_CHECK(cudaMemcpyPeer(dst, dst_dev.index, src, src_dev.index, bytes));
    return;
  }
  DeviceGuard guard(dst_dev.is_cuda() ? dst_dev.index : src_dev.index);
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

}  // namespace zae
