// A small strict JSON (RFC 8259) reader and writer for file headers and metadata:
// objects, arrays, strings (escapes, surrogate pairs, UTF-8 validation), numbers kept
// as their literal text (converted with explicit overflow checks), true/false/null.
// Invariants: the reader never reads past its input, recurses at most max_depth
// levels (hostile nesting is an error, not a stack overflow), allocates only for
// what it returns, and reports every syntax error as a zae::Error
// "<context>: invalid JSON at byte K: <what>". No floating-point conversion exists
// here: callers decide what a number literal means.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zae::io::json {

/// Offset of the first byte of `s` that does not belong to well-formed UTF-8 (RFC 3629:
/// no overlong forms, no surrogates, nothing above U+10FFFF), or npos if all is well.
size_t find_invalid_utf8(std::string_view s);

/// Appends `s` (valid UTF-8) as a JSON string literal, escaped as serde_json and the
/// reference safetensors writer do: '"' and '\\', \b \f \n \r \t, other bytes below
/// 0x20 as \u00xx (lowercase hex); everything else, non-ASCII included, as is.
void append_quoted(std::string& out, std::string_view s);
std::string quote(std::string_view s);

/// What converting a number literal to an integer found.
enum class IntStatus { ok, negative, not_integer, overflow };
/// Converts a JSON number literal (as returned by Reader::read_number) to uint64:
/// negative values, fractions/exponents and values above 2^64-1 are reported, not wrapped.
IntStatus to_uint64(std::string_view literal, uint64_t& out);
/// As to_uint64, for int64 (negative values allowed; `negative` is never returned).
IntStatus to_int64(std::string_view literal, int64_t& out);
/// "negative", "not an integer", "too large", "ok".
const char* int_status_text(IntStatus s);

enum class Kind { object, array, string, number, boolean, null };
/// "object", "array", "string", "number", "boolean", "null".
const char* kind_name(Kind k);

/// A pull parser over one JSON text: the caller walks the structure it expects.
///   Reader r(text, "config.json");
///   r.begin_object(); std::string key;
///   while (r.next_key(key)) { if (r.peek() == Kind::string) use(r.read_string()); else r.skip_value(); }
///   r.end();
class Reader {
 public:
  /// `context` prefixes every error message (e.g. the file name).
  Reader(std::string_view text, std::string context, int max_depth = 64);

  /// Kind of the next value (skips whitespace); an error at the end or on a bad byte.
  Kind peek();
  /// Consumes '{'. Then next_key() until it returns false.
  void begin_object();
  /// Reads the next member's key and its ':' and returns true, or consumes '}' and
  /// returns false. After true, the caller must consume the value (read_* or skip_value).
  bool next_key(std::string& key);
  /// Consumes '['. Then next_element() until it returns false.
  void begin_array();
  /// Positions at the next element and returns true, or consumes ']' and returns false.
  bool next_element();
  /// A string value, unescaped, as UTF-8.
  std::string read_string();
  /// A number value's literal text, checked against JSON's number grammar.
  std::string_view read_number();
  bool read_bool();
  void read_null();
  /// Consumes one value of any kind.
  void skip_value();
  /// Fails unless only whitespace remains.
  void end();
  /// Byte offset of the next unread byte.
  size_t offset() const { return pos_; }
  /// Throws "<context>: invalid JSON at byte <offset>: <what>".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  void skip_ws();
  void expect(char c, const char* what);
  void open(char c);
  void parse_hex4(uint32_t& out);

  std::string_view text_;
  std::string context_;
  size_t pos_ = 0;
  int max_depth_;
  std::vector<bool> first_;  // per open container: no member read yet
};

/// A parsed JSON value (a document tree, for small texts such as metadata).
struct Value {
  Kind kind = Kind::null;
  bool boolean = false;
  std::string text;                                   ///< string: contents; number: literal
  std::vector<Value> items;                           ///< array elements
  std::vector<std::pair<std::string, Value>> members;  ///< object members, in document order

  // Defined in json.cpp, where Value is complete (a recursive member type otherwise
  // breaks clang with libstdc++).
  Value();
  ~Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  static Value make_string(std::string s);
  static Value make_int(int64_t v);
  static Value make_object();
  static Value make_array();
  /// The member named `key`, or null if absent (objects only).
  const Value* find(std::string_view key) const;
};

/// Parses one JSON text into a tree; duplicate keys in an object are an error.
Value parse(std::string_view text, const std::string& context, int max_depth = 64);
/// Compact serialization (no spaces), members in stored order.
std::string dump(const Value& v);
/// Indented serialization for people: two spaces per level, one member or element per line.
std::string dump_pretty(const Value& v);

}  // namespace zae::io::json
