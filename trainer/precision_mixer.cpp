#include <cstdio>

#include "engine/error.h"
#include "trainer/precision_mixer_addon.h"

namespace zae::detail {

DType resolve_precision(const std::string& precision, Device device) {
  if (precision == "bf16" || precision == "bfloat16") return DType::bfloat16;
  if (precision == "fp16" || precision == "float16") return DType::float16;
  if (precision == "fp32" || precision == "float32") return DType::float32;
  ZAE_CHECK(precision == "auto", "PrecisionMixerAddon: precision must be auto, bf16, fp16 or fp32, got \"",
            precision, "\"");
  if (device.is_cuda()) return cuda::compute_capability(device.index) >= 80 ? DType::bfloat16 : DType::float16;
  std::fprintf(stderr, "PrecisionMixerAddon: precision auto on %s trains in float32 (no fast low-precision path "
                       "on the CPU); ask for bf16 or fp16 explicitly to use them anyway\n",
               device.str().c_str());
  return DType::float32;
}

}  // namespace zae::detail
