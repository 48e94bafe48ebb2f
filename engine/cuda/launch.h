// LaunchScope: what an op entry needs before calling a CUDA launcher: the tensor's
// device made current for the scope (restored after) and the stream its work goes to
// (this thread's current stream for that device). CUDA-only header: include it under
// #ifdef ZAE_WITH_CUDA.
#pragma once

#include <cuda_runtime.h>

#include "engine/cuda/stream.h"
#include "engine/device.h"

namespace zae::cuda {

class LaunchScope {
 public:
  explicit LaunchScope(Device device) : guard_(device.index), stream_(current_stream(device.index)) {}
  /// The stream to launch on.
  cudaStream_t stream() const { return stream_; }

 private:
  DeviceGuard guard_;
  cudaStream_t stream_;
};

}  // namespace zae::cuda
