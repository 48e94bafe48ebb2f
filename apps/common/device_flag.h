// The --device flag of the zae-train jobs.
#pragma once

#include <string>

#include "engine/device.h"

namespace zae::apps {

/// "auto" (CUDA when a device is present and the CUDA ops are enabled, else the CPU), or a
/// device string for Device::parse ("cpu", "cuda", "cuda:1"); a bad string is a clear error.
Device resolve_device(const std::string& text);

}  // namespace zae::apps
