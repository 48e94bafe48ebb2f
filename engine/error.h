// zae::Error and the checking macros. Every check throws zae::Error with file,
// line, the failed expression and a message built from the values involved.
// Destructors never throw; bad user input is an exception, never an abort.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace zae {

/// The one exception type the engine throws. what() = "<message> (<expr> at <file>:<line>)".
class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* expr, const char* file, int line);
  /// The message alone, without the location suffix.
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

namespace detail {
template <class T>
void stream_one(std::ostringstream& os, const T& v) {
  os << v;
}
template <class T>
void stream_one(std::ostringstream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
}
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (stream_one(os, args), ...);
  return os.str();
}
[[noreturn]] void throw_error(std::string message, const char* expr, const char* file, int line);
}  // namespace detail

}  // namespace zae

/// ZAE_CHECK(cond, parts...): throws zae::Error("parts..." concatenated) when cond is false.
#define ZAE_CHECK(cond, ...)                                                                      \
  do {                                                                                            \
    if (!(cond)) [[unlikely]]                                                                     \
      ::zae::detail::throw_error(::zae::detail::concat(__VA_ARGS__), #cond, __FILE__, __LINE__); \
  } while (0)

/// ZAE_FAIL(parts...): throws unconditionally.
#define ZAE_FAIL(...) ::zae::detail::throw_error(::zae::detail::concat(__VA_ARGS__), "", __FILE__, __LINE__)
