#include "engine/device.h"

#include <ostream>

#include "engine/error.h"

namespace zae {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
    const std::string num = text.substr(5);
    bool digits = num.find_first_not_of("0123456789") == std::string::npos && num.size() <= 4;
    ZAE_CHECK(digits, "invalid device string '", text, "': expected cpu, cuda or cuda:N");
    return cuda(std::stoi(num));
  }
  ZAE_FAIL("invalid device string '", text, "': expected cpu, cuda or cuda:N");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

namespace cuda {
bool ops_available() { return false; }
}  // namespace cuda

}  // namespace zae
