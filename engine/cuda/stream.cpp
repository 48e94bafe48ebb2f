// Per-thread current streams (a small fixed table: index = device ordinal).
#include "engine/cuda/stream.h"

#include <array>

#include "engine/cuda/cuda_check.h"

namespace zae::cuda {

namespace {
constexpr int kMaxDevices = 64;
thread_local std::array<cudaStream_t, kMaxDevices> t_current{};  // all nullptr = legacy stream 0

void check_index(int device) {
  ZAE_CHECK(device >= 0 && device < kMaxDevices, "CUDA device index ", device, " out of range [0, ", kMaxDevices, ")");
}
}  // namespace

cudaStream_t current_stream(int device) {
  check_index(device);
  return t_current[static_cast<size_t>(device)];
}

void set_current_stream(int device, cudaStream_t stream) {
  check_index(device);
  t_current[static_cast<size_t>(device)] = stream;
}

int current_device() {
  int d = 0;
  CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

DeviceGuard::DeviceGuard(int index) {
  CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != index) {
    CUDA_CHECK(cudaSetDevice(index));
    changed_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (changed_) (void)cudaSetDevice(prev_);  // destructors never throw
}

}  // namespace zae::cuda
