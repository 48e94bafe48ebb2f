// The JSON document tree (json::Value): parse() on top of the pull Reader, with
// duplicate keys refused, and the compact writer dump().
#include <unordered_set>

#include "io/json.h"

namespace zae::io::json {

// ---- Value ----------------------------------------------------------------------------

Value Value::make_string(std::string s) {
  Value v;
  v.kind = Kind::string;
  v.text = std::move(s);
  return v;
}

Value Value::make_int(int64_t x) {
  Value v;
  v.kind = Kind::number;
  v.text = std::to_string(x);
  return v;
}

Value::Value() = default;
Value::~Value() = default;
Value::Value(const Value&) = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(const Value&) = default;
Value& Value::operator=(Value&&) noexcept = default;

Value Value::make_object() {
  Value v;
  v.kind = Kind::object;
  return v;
}

Value Value::make_array() {
  Value v;
  v.kind = Kind::array;
  return v;
}

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

namespace {

Value parse_value(Reader& r) {
  Value v;
  v.kind = r.peek();
  switch (v.kind) {
    case Kind::object: {
      r.begin_object();
      std::unordered_set<std::string> seen;
      std::string key;
      while (true) {
        const size_t at = r.offset();
        if (!r.next_key(key)) break;
        if (!seen.insert(key).second)
          r.fail("duplicate key " + quote(key) + " (the member starting at byte " + std::to_string(at) + ")");
        Value child = parse_value(r);
        v.members.emplace_back(key, std::move(child));
      }
      break;
    }
    case Kind::array:
      r.begin_array();
      while (r.next_element()) v.items.push_back(parse_value(r));
      break;
    case Kind::string: v.text = r.read_string(); break;
    case Kind::number: v.text = std::string(r.read_number()); break;
    case Kind::boolean: v.boolean = r.read_bool(); break;
    case Kind::null: r.read_null(); break;
  }
  return v;
}

void dump_into(std::string& out, const Value& v) {
  switch (v.kind) {
    case Kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, m] : v.members) {
        if (!first) out += ',';
        first = false;
        append_quoted(out, k);
        out += ':';
        dump_into(out, m);
      }
      out += '}';
      return;
    }
    case Kind::array: {
      out += '[';
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ',';
        dump_into(out, v.items[i]);
      }
      out += ']';
      return;
    }
    case Kind::string: append_quoted(out, v.text); return;
    case Kind::number: out += v.text; return;
    case Kind::boolean: out += v.boolean ? "true" : "false"; return;
    case Kind::null: out += "null"; return;
  }
}

}  // namespace

Value parse(std::string_view text, const std::string& context, int max_depth) {
  Reader r(text, context, max_depth);
  Value v = parse_value(r);
  r.end();
  return v;
}

namespace {

void pretty_into(std::string& out, const Value& v, int indent) {
  const std::string pad(static_cast<size_t>(indent + 2), ' ');
  const bool object = v.kind == Kind::object;
  if (!object && v.kind != Kind::array) {
    dump_into(out, v);
    return;
  }
  const size_t n = object ? v.members.size() : v.items.size();
  if (n == 0) {
    out += object ? "{}" : "[]";
    return;
  }
  out += object ? "{\n" : "[\n";
  for (size_t i = 0; i < n; ++i) {
    out += pad;
    if (object) {
      append_quoted(out, v.members[i].first);
      out += ": ";
    }
    pretty_into(out, object ? v.members[i].second : v.items[i], indent + 2);
    out += i + 1 < n ? ",\n" : "\n";
  }
  out += std::string(static_cast<size_t>(indent), ' ') + (object ? "}" : "]");
}

}  // namespace

std::string dump_pretty(const Value& v) {
  std::string out;
  pretty_into(out, v, 0);
  return out;
}

std::string dump(const Value& v) {
  std::string out;
  dump_into(out, v);
  return out;
}

}  // namespace zae::io::json
