#include "io/state_json.h"

#include <charconv>
#include <cmath>
#include <system_error>

#include "engine/error.h"

namespace zae::io::state {

json::Value number(double v) {
  if (std::isnan(v)) return json::Value::make_string("nan");
  if (std::isinf(v)) return json::Value::make_string(v > 0 ? "inf" : "-inf");
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  ZAE_CHECK(ec == std::errc(), "state_json: cannot format ", v);
  json::Value out;
  out.kind = json::Kind::number;
  out.text.assign(buf, end);
  return out;
}

json::Value integer(int64_t v) { return json::Value::make_int(v); }
json::Value string(std::string s) { return json::Value::make_string(std::move(s)); }

json::Value boolean(bool b) {
  json::Value out;
  out.kind = json::Kind::boolean;
  out.boolean = b;
  return out;
}

json::Value numbers(const std::vector<double>& v) {
  json::Value out = json::Value::make_array();
  out.items.reserve(v.size());
  for (double x : v) out.items.push_back(number(x));
  return out;
}

void put(json::Value& object, std::string key, json::Value value) {
  object.members.emplace_back(std::move(key), std::move(value));
}

bool has(const json::Value& object, std::string_view key) {
  return object.kind == json::Kind::object && object.find(key) != nullptr;
}

const json::Value& get(const json::Value& object, std::string_view key, const std::string& context) {
  ZAE_CHECK(object.kind == json::Kind::object, context, ": expected an object holding '", key, "', found a ",
            json::kind_name(object.kind));
  const json::Value* v = object.find(key);
  ZAE_CHECK(v != nullptr, context, ": field '", key, "' is missing");
  return *v;
}

double as_double(const json::Value& v, const std::string& what) {
  if (v.kind == json::Kind::string) {
    if (v.text == "nan") return std::nan("");
    if (v.text == "inf") return INFINITY;
    if (v.text == "-inf") return -INFINITY;
    ZAE_FAIL(what, ": expected a number, found the string ", json::quote(v.text));
  }
  ZAE_CHECK(v.kind == json::Kind::number, what, ": expected a number, found a ", json::kind_name(v.kind));
  double out = 0;
  auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), out);
  ZAE_CHECK(ec == std::errc() && end == v.text.data() + v.text.size(), what, ": number ", v.text,
            " is out of the range of a double");
  return out;
}

int64_t as_int(const json::Value& v, const std::string& what) {
  ZAE_CHECK(v.kind == json::Kind::number, what, ": expected an integer, found a ", json::kind_name(v.kind));
  int64_t out = 0;
  const json::IntStatus s = json::to_int64(v.text, out);
  ZAE_CHECK(s == json::IntStatus::ok, what, ": ", v.text, " is not a valid int64 (", json::int_status_text(s), ")");
  return out;
}

uint64_t as_uint(const json::Value& v, const std::string& what) {
  ZAE_CHECK(v.kind == json::Kind::number, what, ": expected an integer, found a ", json::kind_name(v.kind));
  uint64_t out = 0;
  const json::IntStatus s = json::to_uint64(v.text, out);
  ZAE_CHECK(s == json::IntStatus::ok, what, ": ", v.text, " is not a valid uint64 (", json::int_status_text(s), ")");
  return out;
}

const std::string& as_string(const json::Value& v, const std::string& what) {
  ZAE_CHECK(v.kind == json::Kind::string, what, ": expected a string, found a ", json::kind_name(v.kind));
  return v.text;
}

bool as_bool(const json::Value& v, const std::string& what) {
  ZAE_CHECK(v.kind == json::Kind::boolean, what, ": expected true or false, found a ", json::kind_name(v.kind));
  return v.boolean;
}

std::vector<double> as_doubles(const json::Value& v, const std::string& what) {
  ZAE_CHECK(v.kind == json::Kind::array, what, ": expected an array of numbers, found a ", json::kind_name(v.kind));
  std::vector<double> out;
  out.reserve(v.items.size());
  for (size_t i = 0; i < v.items.size(); ++i) out.push_back(as_double(v.items[i], what + "[" + std::to_string(i) + "]"));
  return out;
}

namespace {
std::string field(std::string_view key, const std::string& context) {
  return context + ": field '" + std::string(key) + "'";
}
}  // namespace

double get_double(const json::Value& o, std::string_view key, const std::string& c) {
  return as_double(get(o, key, c), field(key, c));
}
int64_t get_int(const json::Value& o, std::string_view key, const std::string& c) {
  return as_int(get(o, key, c), field(key, c));
}
uint64_t get_uint(const json::Value& o, std::string_view key, const std::string& c) {
  return as_uint(get(o, key, c), field(key, c));
}
std::string get_string(const json::Value& o, std::string_view key, const std::string& c) {
  return as_string(get(o, key, c), field(key, c));
}
bool get_bool(const json::Value& o, std::string_view key, const std::string& c) {
  return as_bool(get(o, key, c), field(key, c));
}
std::vector<double> get_doubles(const json::Value& o, std::string_view key, const std::string& c) {
  return as_doubles(get(o, key, c), field(key, c));
}

}  // namespace zae::io::state
