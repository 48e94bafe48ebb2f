#include "engine/ops/backend.h"

namespace zae {

bool elementwise_cuda_compiled() {
#ifdef ZAE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool has_kernels_for(const Device& device) { return device.is_cpu() || (device.is_cuda() && elementwise_cuda_compiled()); }

Backend elementwise_backend(const char* op_name, Device device, DType dtype) {
  if (device.is_cpu()) return Backend::cpu;
  ZAE_CHECK(device.is_cuda() && elementwise_cuda_compiled(), op_name, ": not implemented for device ", device,
            " in this build (dtype ", dtype, ")");
  return Backend::cuda;
}

}  // namespace zae
