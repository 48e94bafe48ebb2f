// Pinned host memory and asynchronous host-to-device copies (see pinned_memory.h).
// CUDA builds allocate with cudaHostAlloc and detect pinned pointers with
// cudaPointerGetAttributes. An asynchronous copy records an event after it and
// parks the source storage in a process-wide list; each later call releases the
// storages whose events have completed, so a host batch dropped right after
// Batch::to(device, true) is never freed under a running copy.
#include "io/pinned_memory.h"

#include <cstring>

#include "engine/error.h"
#include "engine/ops/copy.h"

#ifdef ZAE_WITH_CUDA
#include <mutex>
#include <utility>
#include <vector>

#include "engine/cuda/cuda_check.h"
#endif

namespace zae {

#ifdef ZAE_WITH_CUDA
namespace {

void free_pinned(void* p) { (void)cudaFreeHost(p); }  // destructors never throw
void no_free(void*) {}

class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != index) CUDA_CHECK(cudaSetDevice(index));
  }
  ~DeviceGuard() { (void)cudaSetDevice(prev_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
};

// Source storages of asynchronous copies still in flight, each with the event
// recorded after its copy. Leaked on purpose: no CUDA calls during static teardown.
struct InFlight {
  std::mutex mu;
  std::vector<std::pair<cudaEvent_t, Storage>> items;

  // Drops the entries whose copies have finished. Caller holds mu.
  void sweep() {
    size_t kept = 0;
    for (auto& item : items) {
      cudaError_t st = cudaEventQuery(item.first);
      if (st == cudaErrorNotReady) {
        items[kept++] = std::move(item);
      } else {
        (void)cudaGetLastError();  // a failed copy reports at the next synchronising call
        (void)cudaEventDestroy(item.first);
      }
    }
    items.resize(kept);
  }
};

InFlight& in_flight() {
  static InFlight* list = new InFlight();
  return *list;
}

}  // namespace

bool pinned_memory_available() { return cuda::is_available(); }

Tensor empty_pinned(const Shape& shape, DType dtype) {
  if (!pinned_memory_available()) return Tensor::empty(shape, {.dtype = dtype});
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * itemsize(dtype);
  DataPtr data(nullptr, &no_free);
  if (nbytes > 0) {
    void* p = nullptr;
    cudaError_t err = cudaHostAlloc(&p, nbytes, cudaHostAllocPortable);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      ZAE_FAIL("empty_pinned: cudaHostAlloc of ", nbytes, " bytes for shape ", shape_str(shape), " ", dtype,
               " failed: ", cudaGetErrorString(err));
    }
    data = DataPtr(p, &free_pinned);
  }
  auto storage = std::make_shared<StorageImpl>(std::move(data), nbytes, Device::cpu());
  return Tensor::make_view(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

bool is_pinned(const Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || !pinned_memory_available()) return false;
  void* p = t.storage()->data();
  if (p == nullptr) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();  // ordinary pageable memory on old runtimes
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

Tensor to_device(const Tensor& t, Device device, bool non_blocking) {
  ZAE_CHECK(t.defined(), "to_device: undefined tensor");
  if (t.device() == device) return t;
  const bool async = non_blocking && device.is_cuda() && t.device().is_cpu() && t.is_contiguous() &&
                     !t.requires_grad() && t.numel() > 0 && is_pinned(t);
  if (!async) return t.to(device);
  Tensor out = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = device});
  DeviceGuard guard(device.index);
  InFlight& list = in_flight();
  std::lock_guard<std::mutex> lock(list.mu);
  list.sweep();
  CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), t.raw_data(), t.nbytes(), cudaMemcpyHostToDevice, cudaStreamLegacy));
  cudaEvent_t done = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(done, cudaStreamLegacy);
  if (err != cudaSuccess) {
    (void)cudaEventDestroy(done);
    CUDA_CHECK(err);
  }
  list.items.emplace_back(done, t.storage());
  return out;
}

#else  // no CUDA backend: pinning is a no-op, copies are synchronous

bool pinned_memory_available() { return false; }

Tensor empty_pinned(const Shape& shape, DType dtype) { return Tensor::empty(shape, {.dtype = dtype}); }

bool is_pinned(const Tensor&) { return false; }

Tensor to_device(const Tensor& t, Device device, bool /*non_blocking*/) {
  ZAE_CHECK(t.defined(), "to_device: undefined tensor");
  if (t.device() == device) return t;
  return t.to(device);
}

#endif

Tensor pin_memory(const Tensor& t) {
  ZAE_CHECK(t.defined(), "pin_memory: undefined tensor");
  ZAE_CHECK(t.device().is_cpu(), "pin_memory: only CPU tensors can be pinned, got a tensor on ", t.device());
  if (!pinned_memory_available() || is_pinned(t)) return t;
  Tensor out = empty_pinned(t.shape(), t.dtype());
  if (t.is_contiguous()) {
    if (t.nbytes() > 0) std::memcpy(out.raw_data(), t.raw_data(), t.nbytes());
  } else {
    copy_into(out, t);
  }
  return out;
}

}  // namespace zae
