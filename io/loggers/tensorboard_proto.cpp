// Hand-written protobuf encoding/decoding of TensorBoard's Event subset (see the header).
#include "io/loggers/tensorboard_proto.h"

#include <cstring>

#include "engine/error.h"
#include "io/crc32c.h"

namespace zae::io::tensorboard {
namespace {

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// ---- encoding ---------------------------------------------------------------------------

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, Wire wire) { put_varint(out, (uint64_t{field} << 3) | wire); }

void put_le(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

uint64_t double_bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

void put_double(std::string& out, uint32_t field, double d) {
  if (double_bits(d) == 0) return;  // proto3 omits +0.0
  put_key(out, field, kFixed64);
  put_le(out, double_bits(d), 8);
}

void put_bytes(std::string& out, uint32_t field, std::string_view s) {
  put_key(out, field, kLen);
  put_varint(out, s.size());
  out.append(s);
}

void put_packed_doubles(std::string& out, uint32_t field, const std::vector<double>& v) {
  if (v.empty()) return;
  put_key(out, field, kLen);
  put_varint(out, v.size() * 8);
  for (double d : v) put_le(out, double_bits(d), 8);
}

std::string encode_histogram(const Histogram& h) {
  std::string out;
  put_double(out, 1, h.min);
  put_double(out, 2, h.max);
  put_double(out, 3, h.num);
  put_double(out, 4, h.sum);
  put_double(out, 5, h.sum_squares);
  put_packed_doubles(out, 6, h.bucket_limit);
  put_packed_doubles(out, 7, h.bucket);
  return out;
}

std::string encode_string_tensor(const SummaryValue& v) {
  std::string out;
  put_key(out, 1, kVarint);
  put_varint(out, static_cast<uint64_t>(v.tensor_dtype));
  put_bytes(out, 2, "");  // tensor_shape: no dims = a scalar
  for (const std::string& s : v.string_val) put_bytes(out, 8, s);
  return out;
}

std::string encode_value(const SummaryValue& v) {
  std::string out;
  if (!v.tag.empty()) put_bytes(out, 1, v.tag);
  switch (v.kind) {
    case SummaryValue::Kind::simple_value: {
      uint32_t bits;
      std::memcpy(&bits, &v.simple_value, 4);
      put_key(out, 2, kFixed32);
      put_le(out, bits, 4);
      break;
    }
    case SummaryValue::Kind::histogram:
      put_bytes(out, 5, encode_histogram(v.histogram));
      break;
    case SummaryValue::Kind::tensor:
      put_bytes(out, 8, encode_string_tensor(v));
      break;
    case SummaryValue::Kind::none:
      break;
  }
  if (!v.plugin_name.empty() || !v.plugin_content.empty()) {
    std::string plugin;
    if (!v.plugin_name.empty()) put_bytes(plugin, 1, v.plugin_name);
    if (!v.plugin_content.empty()) put_bytes(plugin, 2, v.plugin_content);
    std::string metadata;
    put_bytes(metadata, 1, plugin);
    put_bytes(out, 9, metadata);
  }
  return out;
}

// ---- decoding ---------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view data, const std::string& context) : data_(data), context_(context) {}

  bool done() const { return pos_ >= data_.size(); }

  // Reads the next key; false at the end of the message.
  bool next(uint32_t& field, uint32_t& wire) {
    if (done()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    wire = static_cast<uint32_t>(key & 7);
    if (field == 0 || (key >> 3) > 0x1FFFFFFF) fail("invalid field number " + std::to_string(key >> 3));
    return true;
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail("varint runs past the end");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail("varint longer than 10 bytes");
  }

  uint64_t fixed(int bytes) {
    if (data_.size() - pos_ < static_cast<size_t>(bytes)) fail("fixed-width field runs past the end");
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += static_cast<size_t>(bytes);
    return v;
  }

  double read_double() {
    const uint64_t b = fixed(8);
    double d;
    std::memcpy(&d, &b, 8);
    return d;
  }

  float read_float() {
    const auto b = static_cast<uint32_t>(fixed(4));
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > data_.size() - pos_) fail("length " + std::to_string(n) + " runs past the end");
    std::string_view s = data_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kFixed64: fixed(8); break;
      case kLen: bytes(); break;
      case kFixed32: fixed(4); break;
      default: fail("unsupported wire type " + std::to_string(wire));
    }
  }

  void expect(uint32_t field, uint32_t wire, uint32_t want) const {
    if (wire != want)
      fail("field " + std::to_string(field) + " has wire type " + std::to_string(wire) + ", expected " +
           std::to_string(want));
  }

  [[noreturn]] void fail(const std::string& what) const {
    ZAE_FAIL(context_, ": malformed protobuf: ", what, " (byte ", pos_, " of ", data_.size(), ")");
  }

  const std::string& context() const { return context_; }

 private:
  std::string_view data_;
  const std::string& context_;
  size_t pos_ = 0;
};

void read_doubles(Parser& p, uint32_t field, uint32_t wire, std::vector<double>& out) {
  if (wire == kFixed64) {
    out.push_back(p.read_double());
    return;
  }
  p.expect(field, wire, kLen);
  const std::string_view packed = p.bytes();
  if (packed.size() % 8 != 0) p.fail("packed doubles of " + std::to_string(packed.size()) + " bytes");
  for (size_t i = 0; i < packed.size(); i += 8) {
    uint64_t b = 0;
    for (int k = 0; k < 8; ++k) b |= static_cast<uint64_t>(static_cast<uint8_t>(packed[i + k])) << (8 * k);
    double d;
    std::memcpy(&d, &b, 8);
    out.push_back(d);
  }
}

Histogram decode_histogram(std::string_view data, const std::string& context) {
  Histogram h;
  Parser p(data, context);
  uint32_t field, wire;
  while (p.next(field, wire)) {
    if (field >= 1 && field <= 5) {
      p.expect(field, wire, kFixed64);
      const double d = p.read_double();
      double* slots[] = {&h.min, &h.max, &h.num, &h.sum, &h.sum_squares};
      *slots[field - 1] = d;
    } else if (field == 6) {
      read_doubles(p, field, wire, h.bucket_limit);
    } else if (field == 7) {
      read_doubles(p, field, wire, h.bucket);
    } else {
      p.skip(wire);
    }
  }
  return h;
}

void decode_tensor(std::string_view data, const std::string& context, SummaryValue& v) {
  Parser p(data, context);
  uint32_t field, wire;
  while (p.next(field, wire)) {
    if (field == 1) {
      p.expect(field, wire, kVarint);
      v.tensor_dtype = static_cast<int>(p.varint());
    } else if (field == 8) {
      p.expect(field, wire, kLen);
      v.string_val.emplace_back(p.bytes());
    } else {
      p.skip(wire);
    }
  }
}

void decode_metadata(std::string_view data, const std::string& context, SummaryValue& v) {
  Parser p(data, context);
  uint32_t field, wire;
  while (p.next(field, wire)) {
    if (field != 1) {
      p.skip(wire);
      continue;
    }
    p.expect(field, wire, kLen);
    Parser q(p.bytes(), context);
    uint32_t f2, w2;
    while (q.next(f2, w2)) {
      if (f2 == 1 || f2 == 2) {
        q.expect(f2, w2, kLen);
        (f2 == 1 ? v.plugin_name : v.plugin_content) = std::string(q.bytes());
      } else {
        q.skip(w2);
      }
    }
  }
}

SummaryValue decode_value(std::string_view data, const std::string& context) {
  SummaryValue v;
  Parser p(data, context);
  uint32_t field, wire;
  while (p.next(field, wire)) {
    switch (field) {
      case 1:
        p.expect(field, wire, kLen);
        v.tag = std::string(p.bytes());
        break;
      case 2:
        p.expect(field, wire, kFixed32);
        v.simple_value = p.read_float();
        v.kind = SummaryValue::Kind::simple_value;
        break;
      case 5:
        p.expect(field, wire, kLen);
        v.histogram = decode_histogram(p.bytes(), context);
        v.kind = SummaryValue::Kind::histogram;
        break;
      case 8:
        p.expect(field, wire, kLen);
        decode_tensor(p.bytes(), context, v);
        v.kind = SummaryValue::Kind::tensor;
        break;
      case 9:
        p.expect(field, wire, kLen);
        decode_metadata(p.bytes(), context, v);
        break;
      default:
        p.skip(wire);
    }
  }
  return v;
}

}  // namespace

std::string encode_event(const Event& event) {
  std::string out;
  put_double(out, 1, event.wall_time);
  if (event.step != 0) {
    put_key(out, 2, kVarint);
    put_varint(out, static_cast<uint64_t>(event.step));  // negative steps: 10-byte two's complement
  }
  if (!event.file_version.empty()) put_bytes(out, 3, event.file_version);
  if (event.has_summary || !event.values.empty()) {
    std::string summary;
    for (const SummaryValue& v : event.values) put_bytes(summary, 1, encode_value(v));
    put_bytes(out, 5, summary);
  }
  return out;
}

Event decode_event(std::string_view data, const std::string& context) {
  Event e;
  Parser p(data, context);
  uint32_t field, wire;
  while (p.next(field, wire)) {
    switch (field) {
      case 1:
        p.expect(field, wire, kFixed64);
        e.wall_time = p.read_double();
        break;
      case 2:
        p.expect(field, wire, kVarint);
        e.step = static_cast<int64_t>(p.varint());
        break;
      case 3:
        p.expect(field, wire, kLen);
        e.file_version = std::string(p.bytes());
        break;
      case 5: {
        p.expect(field, wire, kLen);
        e.has_summary = true;
        Parser s(p.bytes(), context);
        uint32_t f2, w2;
        while (s.next(f2, w2)) {
          if (f2 == 1) {
            s.expect(f2, w2, kLen);
            e.values.push_back(decode_value(s.bytes(), context));
          } else {
            s.skip(w2);
          }
        }
        break;
      }
      default:
        p.skip(wire);
    }
  }
  return e;
}

void append_record(std::string& out, std::string_view data) {
  std::string header;
  put_le(header, data.size(), 8);
  out.append(header);
  put_le(out, mask_crc32c(crc32c(header)), 4);
  out.append(data);
  put_le(out, mask_crc32c(crc32c(data)), 4);
}

std::string frame_record(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  append_record(out, data);
  return out;
}

Event make_scalar_event(double wall_time, int64_t step, std::string tag, float value) {
  Event e;
  e.wall_time = wall_time;
  e.step = step;
  SummaryValue& v = e.values.emplace_back();
  v.tag = std::move(tag);
  v.kind = SummaryValue::Kind::simple_value;
  v.simple_value = value;
  return e;
}

Event make_histogram_event(double wall_time, int64_t step, std::string tag, Histogram histogram) {
  Event e;
  e.wall_time = wall_time;
  e.step = step;
  SummaryValue& v = e.values.emplace_back();
  v.tag = std::move(tag);
  v.kind = SummaryValue::Kind::histogram;
  v.histogram = std::move(histogram);
  return e;
}

Event make_text_event(double wall_time, int64_t step, std::string tag, std::string text) {
  Event e;
  e.wall_time = wall_time;
  e.step = step;
  SummaryValue& v = e.values.emplace_back();
  v.tag = std::move(tag);
  v.kind = SummaryValue::Kind::tensor;
  v.tensor_dtype = kDtString;
  v.string_val.push_back(std::move(text));
  v.plugin_name = "text";
  return e;
}

}  // namespace zae::io::tensorboard
