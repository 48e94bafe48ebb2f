// libFuzzer entry point over the hardened safetensors reader. Any input must either
// parse or be refused with a zae::Error; a crash, a sanitizer report, a leak, a hang or
// any other exception is a bug. Also fuzzes the generic JSON tree parser on the header
// bytes. Build and run: scripts/fuzz.sh (see tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/error.h"
#include "io/json.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zae::io::SafetensorsLoadOptions options;
  options.widen_unsupported = true;  // reaches the widening conversions too
  try {
    (void)zae::io::parse_safetensors(data, size, "fuzz", options);
  } catch (const zae::Error&) {
  }
  if (size > 8) {
    const std::string_view header(reinterpret_cast<const char*>(data) + 8, size - 8);
    try {
      (void)zae::io::json::parse(header, "fuzz");
    } catch (const zae::Error&) {
    }
  }
  return 0;
}
