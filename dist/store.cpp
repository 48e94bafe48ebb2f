#include "dist/store.h"

#include <charconv>

#include "engine/error.h"

namespace zae::dist {

int64_t parse_store_integer(const std::string& key, const Bytes& value) {
  const char* begin = reinterpret_cast<const char*>(value.data());
  const char* end = begin + value.size();
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, v);
  ZAE_CHECK(ec == std::errc() && ptr == end && !value.empty(), "store: key '", key,
            "' does not hold an integer (add() needs decimal text), it holds ", value.size(), " byte(s)");
  return v;
}

}  // namespace zae::dist
