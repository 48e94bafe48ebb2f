#include "engine/error.h"

#include <cstring>

namespace zae {

namespace {
std::string with_location(const std::string& message, const char* expr, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string out = message;
  out += " (";
  if (expr && *expr) {
    out += "check failed: ";
    out += expr;
    out += " at ";
  }
  out += base;
  out += ':';
  out += std::to_string(line);
  out += ')';
  return out;
}
}  // namespace

Error::Error(std::string message, const char* expr, const char* file, int line)
    : std::runtime_error(with_location(message, expr, file, line)), message_(std::move(message)) {}

namespace detail {
void throw_error(std::string message, const char* expr, const char* file, int line) {
  throw Error(std::move(message), expr, file, line);
}
}  // namespace detail

}  // namespace zae
