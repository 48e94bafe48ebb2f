#include "apps/common/device_flag.h"

namespace zae::apps {

Device resolve_device(const std::string& text) {
  if (text == "auto") return cuda::is_available() && cuda::ops_available() ? Device::cuda(0) : Device::cpu();
  return Device::parse(text);
}

}  // namespace zae::apps
