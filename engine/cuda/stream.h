// Current CUDA stream per thread and device. Work the engine launches for device i
// goes to current_stream(i); a thread starts on each device's legacy default stream
// (0), as PyTorch does, and StreamGuard switches it for a scope. CUDA-only header:
// include it from .cu files and engine/cuda/*.cpp only.
#pragma once

#include <cuda_runtime.h>

namespace zae::cuda {

/// The stream this thread launches on for device `device` (default: the legacy stream 0).
cudaStream_t current_stream(int device);
/// Makes `stream` (created on `device`) current for this thread.
void set_current_stream(int device, cudaStream_t stream);
/// The device index the calling thread's CUDA context is on (cudaGetDevice).
int current_device();

/// Sets device `device`'s current stream for a scope and restores the previous one.
class StreamGuard {
 public:
  StreamGuard(int device, cudaStream_t stream) : device_(device), prev_(current_stream(device)) {
    set_current_stream(device, stream);
  }
  ~StreamGuard() { set_current_stream(device_, prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  cudaStream_t prev_;
};

/// Makes device `index` current for the calling thread for a scope (cudaSetDevice) and restores it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

}  // namespace zae::cuda
