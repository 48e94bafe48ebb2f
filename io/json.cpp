// Strict JSON: the byte-level pull parser (recursion only through skip_value, bounded
// by max_depth), UTF-8 validation, string quoting and integer conversion. The document
// tree is in json_value.cpp.
#include "io/json.h"

#include <limits>

#include "engine/error.h"

namespace zae::io::json {

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;  // no overlong forms
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;  // no overlong forms
    if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // 0x80-0xC1 (continuation or overlong lead) and 0xF5-0xFF
  }
  if (s.size() - i < len) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string byte_text(unsigned char c) {
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  out += hex[c >> 4];
  out += hex[c & 15];
  if (c >= 0x20 && c < 0x7F) out += std::string(" '") + static_cast<char>(c) + "'";
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_sequence(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

void append_quoted(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string quote(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

IntStatus to_uint64(std::string_view literal, uint64_t& out) {
  out = 0;
  if (!literal.empty() && literal[0] == '-') return IntStatus::negative;
  if (literal.find_first_of(".eE") != std::string_view::npos) return IntStatus::not_integer;
  if (literal.empty()) return IntStatus::not_integer;
  uint64_t v = 0;
  for (char c : literal) {
    if (!is_digit(c)) return IntStatus::not_integer;
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return IntStatus::overflow;
    v = v * 10 + d;
  }
  out = v;
  return IntStatus::ok;
}

IntStatus to_int64(std::string_view literal, int64_t& out) {
  out = 0;
  const bool neg = !literal.empty() && literal[0] == '-';
  uint64_t mag = 0;
  const IntStatus s = to_uint64(neg ? literal.substr(1) : literal, mag);
  if (s != IntStatus::ok) return s;
  const uint64_t limit = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (mag > limit) return IntStatus::overflow;
  out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return IntStatus::ok;
}

const char* int_status_text(IntStatus s) {
  switch (s) {
    case IntStatus::ok: return "ok";
    case IntStatus::negative: return "negative";
    case IntStatus::not_integer: return "not an integer";
    case IntStatus::overflow: return "too large";
  }
  return "?";
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::object: return "object";
    case Kind::array: return "array";
    case Kind::string: return "string";
    case Kind::number: return "number";
    case Kind::boolean: return "boolean";
    case Kind::null: return "null";
  }
  return "?";
}

// ---- Reader -------------------------------------------------------------------------

Reader::Reader(std::string_view text, std::string context, int max_depth)
    : text_(text), context_(std::move(context)), max_depth_(max_depth) {}

void Reader::fail(const std::string& what) const {
  ZAE_FAIL(context_, ": invalid JSON at byte ", pos_, ": ", what);
}

void Reader::skip_ws() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ++pos_;
  }
}

void Reader::expect(char c, const char* what) {
  skip_ws();
  if (pos_ >= text_.size()) fail(std::string("unexpected end of input, expected ") + what);
  if (text_[pos_] != c)
    fail(std::string("expected ") + what + ", found " + byte_text(static_cast<unsigned char>(text_[pos_])));
  ++pos_;
}

Kind Reader::peek() {
  skip_ws();
  if (pos_ >= text_.size()) fail("unexpected end of input, expected a value");
  const char c = text_[pos_];
  switch (c) {
    case '{': return Kind::object;
    case '[': return Kind::array;
    case '"': return Kind::string;
    case 't':
    case 'f': return Kind::boolean;
    case 'n': return Kind::null;
    default:
      if (c == '-' || is_digit(c)) return Kind::number;
  }
  fail("expected a value, found " + byte_text(static_cast<unsigned char>(c)));
}

void Reader::open(char c) {
  expect(c, c == '{' ? "'{'" : "'['");
  if (static_cast<int>(first_.size()) >= max_depth_)
    fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
  first_.push_back(true);
}

void Reader::begin_object() { open('{'); }
void Reader::begin_array() { open('['); }

bool Reader::next_key(std::string& key) {
  ZAE_CHECK(!first_.empty(), context_, ": JSON reader: next_key outside an object");
  skip_ws();
  if (pos_ < text_.size() && text_[pos_] == '}') {
    ++pos_;
    first_.pop_back();
    return false;
  }
  if (!first_.back()) expect(',', "',' or '}' after an object member");
  first_.back() = false;
  skip_ws();
  if (pos_ >= text_.size() || text_[pos_] != '"') {
    if (pos_ >= text_.size()) fail("unexpected end of input, expected a string key");
    fail("expected a string key, found " + byte_text(static_cast<unsigned char>(text_[pos_])));
  }
  key = read_string();
  expect(':', "':' after an object key");
  return true;
}

bool Reader::next_element() {
  ZAE_CHECK(!first_.empty(), context_, ": JSON reader: next_element outside an array");
  skip_ws();
  if (pos_ < text_.size() && text_[pos_] == ']') {
    ++pos_;
    first_.pop_back();
    return false;
  }
  if (!first_.back()) expect(',', "',' or ']' after an array element");
  first_.back() = false;
  return true;
}

void Reader::parse_hex4(uint32_t& out) {
  if (text_.size() - pos_ < 4) fail("truncated \\u escape");
  out = 0;
  for (int k = 0; k < 4; ++k) {
    const char c = text_[pos_];
    uint32_t d;
    if (is_digit(c))
      d = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = static_cast<uint32_t>(c - 'A' + 10);
    else
      fail("bad hex digit in \\u escape: " + byte_text(static_cast<unsigned char>(c)));
    out = out * 16 + d;
    ++pos_;
  }
}

std::string Reader::read_string() {
  expect('"', "a string");
  std::string out;
  while (true) {
    if (pos_ >= text_.size()) fail("unterminated string");
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      ++pos_;
      return out;
    }
    if (c < 0x20) fail("raw control byte " + byte_text(c) + " in a string (must be escaped)");
    if (c >= 0x80) {
      const size_t len = utf8_sequence(text_, pos_);
      if (len == 0) fail("invalid UTF-8 in a string");
      out.append(text_.substr(pos_, len));
      pos_ += len;
      continue;
    }
    if (c != '\\') {
      out += static_cast<char>(c);
      ++pos_;
      continue;
    }
    ++pos_;
    if (pos_ >= text_.size()) fail("unterminated escape");
    const char e = text_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        parse_hex4(cp);
        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (text_.size() - pos_ < 2 || text_[pos_] != '\\' || text_[pos_ + 1] != 'u')
            fail("high surrogate in \\u escape not followed by a low surrogate");
          pos_ += 2;
          uint32_t lo = 0;
          parse_hex4(lo);
          if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate in \\u escape not followed by a low surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        append_utf8(out, cp);
        break;
      }
      default:
        --pos_;
        fail("unknown escape \\" + std::string(1, e));
    }
  }
}

std::string_view Reader::read_number() {
  skip_ws();
  const size_t start = pos_;
  const auto digits = [&] {
    const size_t from = pos_;
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    return pos_ - from;
  };
  if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
  if (pos_ < text_.size() && text_[pos_] == '0') {
    ++pos_;
    if (pos_ < text_.size() && is_digit(text_[pos_])) fail("number with a leading zero");
  } else if (digits() == 0) {
    fail("expected a digit in a number");
  }
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    if (digits() == 0) fail("expected a digit after '.' in a number");
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (digits() == 0) fail("expected a digit in a number's exponent");
  }
  return text_.substr(start, pos_ - start);
}

bool Reader::read_bool() {
  skip_ws();
  if (text_.substr(pos_, 4) == "true") {
    pos_ += 4;
    return true;
  }
  if (text_.substr(pos_, 5) == "false") {
    pos_ += 5;
    return false;
  }
  fail("expected true or false");
}

void Reader::read_null() {
  skip_ws();
  if (text_.substr(pos_, 4) != "null") fail("expected null");
  pos_ += 4;
}

void Reader::skip_value() {
  std::string key;
  switch (peek()) {
    case Kind::object:
      begin_object();
      while (next_key(key)) skip_value();
      return;
    case Kind::array:
      begin_array();
      while (next_element()) skip_value();
      return;
    case Kind::string: read_string(); return;
    case Kind::number: read_number(); return;
    case Kind::boolean: read_bool(); return;
    case Kind::null: read_null(); return;
  }
}

void Reader::end() {
  skip_ws();
  if (pos_ != text_.size())
    fail("unexpected data after the JSON value: " + byte_text(static_cast<unsigned char>(text_[pos_])));
}

}  // namespace zae::io::json
