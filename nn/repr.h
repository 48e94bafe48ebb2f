// Text for extra_repr(): numbers and booleans spelled the way PyTorch's Python
// repr() spells them, so printed modules read exactly like PyTorch's.
#pragma once

#include <string>

namespace zae::nn {

/// A double as Python's repr() writes it ("0.1", "1.0", "1e-05"): the shortest
/// round-trip digits, fixed notation for decimal exponents in [-4, 16), else
/// scientific with a signed, at least two-digit exponent.
std::string python_float_repr(double v);
/// "True" / "False".
inline const char* python_bool_repr(bool b) { return b ? "True" : "False"; }

}  // namespace zae::nn
