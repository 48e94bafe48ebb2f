// Text helpers of zae-ckpt: terminal-safe names, natural name order, shapes, numbers,
// byte counts and indented JSON. Pure functions of their arguments.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"
#include "io/json.h"

namespace zae::apps::ckpt {

/// `s` as is, or JSON-quoted and escaped when it holds control bytes (text from a file).
std::string printable(const std::string& s);
/// Name order with digit runs compared as numbers ("optim.2.x" before "optim.10.x").
bool natural_less(const std::string& a, const std::string& b);
/// "[2, 3]"; "[]" for a scalar.
std::string shape_text(const Shape& shape);
/// %.6g, and "inf"/"-inf".
std::string num(double v);
/// `v` as indented JSON (2 spaces; members in stored order; strings escaped as io::json).
std::string pretty_json(const io::json::Value& v);
/// "123 B", "1.5 KiB", "2.0 MiB", ...
std::string human_bytes(uint64_t n);

}  // namespace zae::apps::ckpt
