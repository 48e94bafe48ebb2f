// CUDA runtime glue for the engine: device queries, allocator_for (the CPU allocator,
// or the stream-ordered caching allocator of engine/cuda/caching_allocator.h for
// Device::cuda(i)), and byte copies between any two devices.
#include <cstring>

#include "engine/allocator.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"

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

int compute_capability(int index) {
  const int n = device_count();
  ZAE_CHECK(index >= 0 && index < n, "compute_capability: cuda:", index, " does not exist (", n,
            " CUDA device(s) visible)");
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  return 10 * major + minor;
}

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
}  // namespace

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  check_device(d);
  return cuda::caching_allocator(d.index);
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
  cuda::DeviceGuard guard(dst_dev.is_cuda() ? dst_dev.index : src_dev.index);
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

}  // namespace zae
