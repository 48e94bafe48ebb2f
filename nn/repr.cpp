#include "nn/repr.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace zae::nn {

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // e.g. "-1.25e-05"
  const size_t e = sci.find('e');
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const std::string sign = sci[0] == '-' ? "-" : "";
  std::string digits;
  for (size_t i = sign.size(); i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const size_t n = digits.size();
  std::string out = sign;  // appended piecewise (GCC 12 misfires -Wrestrict on "lit" + string&&)
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      out.append("0.").append(static_cast<size_t>(-exp10 - 1), '0').append(digits);
      return out;
    }
    const size_t int_digits = static_cast<size_t>(exp10) + 1;
    if (n <= int_digits) {
      out.append(digits).append(int_digits - n, '0').append(".0");
    } else {
      out.append(digits, 0, int_digits).append(".").append(digits, int_digits, std::string::npos);
    }
    return out;
  }
  out.append(digits, 0, 1);
  if (n > 1) out.append(".").append(digits, 1, std::string::npos);
  const int a = std::abs(exp10);
  out.append(exp10 < 0 ? "e-" : "e+").append(a < 10 ? "0" : "").append(std::to_string(a));
  return out;
}

}  // namespace zae::nn
