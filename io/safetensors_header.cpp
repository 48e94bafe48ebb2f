// The safetensors header: parsing and complete validation of the header and the file
// layout (REFERENCE.md's rejection list), with checked arithmetic throughout. Nothing
// here reads tensor data; parse_safetensors and read_safetensors_header build on it.
#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "engine/error.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/safetensors_format.h"

namespace zae::io {

namespace detail {

namespace {

// The reference's Dtype enum, in its order (its writer sorts by it, descending).
const StDType kDTypes[] = {
    {"BOOL", 8, 0, DType::bool_, std::nullopt},
    {"F4", 4, 1, std::nullopt, std::nullopt},
    {"F6_E2M3", 6, 2, std::nullopt, std::nullopt},
    {"F6_E3M2", 6, 3, std::nullopt, std::nullopt},
    {"U8", 8, 4, DType::uint8, std::nullopt},
    {"I8", 8, 5, std::nullopt, DType::int32},
    {"F8_E5M2", 8, 6, std::nullopt, std::nullopt},
    {"F8_E4M3", 8, 7, std::nullopt, std::nullopt},
    {"F8_E8M0", 8, 8, std::nullopt, std::nullopt},
    {"F8_E4M3FNUZ", 8, 9, std::nullopt, std::nullopt},
    {"F8_E5M2FNUZ", 8, 10, std::nullopt, std::nullopt},
    {"I16", 16, 11, std::nullopt, DType::int32},
    {"U16", 16, 12, std::nullopt, DType::int32},
    {"F16", 16, 13, DType::float16, std::nullopt},
    {"BF16", 16, 14, DType::bfloat16, std::nullopt},
    {"I32", 32, 15, DType::int32, std::nullopt},
    {"U32", 32, 16, std::nullopt, DType::int64},
    {"F32", 32, 17, DType::float32, std::nullopt},
    {"C64", 64, 18, std::nullopt, std::nullopt},
    {"F64", 64, 19, DType::float64, std::nullopt},
    {"I64", 64, 20, DType::int64, std::nullopt},
    {"U64", 64, 21, std::nullopt, DType::int64},
};

}  // namespace

const StDType* find_st_dtype(std::string_view name) {
  for (const StDType& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const StDType& st_dtype_of(DType t) {
  for (const StDType& d : kDTypes)
    if (d.engine == t) return d;
  ZAE_FAIL("safetensors: engine dtype ", t, " has no safetensors name");
}

std::string where(const std::string& origin) { return "safetensors '" + origin + "'"; }

std::string shape_text(const Shape& shape) {
  std::string out = "[";
  const size_t shown = std::min<size_t>(shape.size(), 12);
  for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  if (shown < shape.size()) out += ", ... (" + std::to_string(shape.size()) + " dims)";
  return out + "]";
}

}  // namespace detail

namespace {

using detail::where;
using json::Kind;

struct Parsed {
  SafetensorsEntry entry;
  const detail::StDType* dtype = nullptr;
};

// Reads a non-negative integer (field `field`, element `index` when given); every failure
// names the tensor and the field. Names are only formatted on failure.
uint64_t read_u64(json::Reader& r, const std::string& ctx, const char* field, int64_t index = -1) {
  const auto name = [&] {
    std::string out = field;
    if (index >= 0) out.append("[").append(std::to_string(index)).append("]");
    return out;
  };
  const Kind k = r.peek();
  if (k != Kind::number) ZAE_FAIL(ctx, ": ", name(), " is a JSON ", json::kind_name(k), ", not an integer");
  const std::string_view lit = r.read_number();
  uint64_t v = 0;
  switch (json::to_uint64(lit, v)) {
    case json::IntStatus::ok: return v;
    case json::IntStatus::negative: ZAE_FAIL(ctx, ": ", name(), " is negative (", lit, ")");
    case json::IntStatus::not_integer: ZAE_FAIL(ctx, ": ", name(), " is not an integer (", lit, ")");
    case json::IntStatus::overflow: ZAE_FAIL(ctx, ": ", name(), " overflows 64 bits (", lit, ")");
  }
  ZAE_FAIL(ctx, ": ", name(), ": bad number");
}

void expect_array(json::Reader& r, const std::string& ctx, const char* field, const char* what) {
  const Kind k = r.peek();
  if (k != Kind::array) ZAE_FAIL(ctx, ": field '", field, "' must be ", what, ", found a JSON ", json::kind_name(k));
  r.begin_array();
}

Parsed parse_entry(json::Reader& r, const std::string& origin, const std::string& name) {
  const std::string ctx = where(origin) + ": tensor " + json::quote(name);
  const Kind k = r.peek();
  if (k != Kind::object) ZAE_FAIL(ctx, ": entry is a JSON ", json::kind_name(k), ", not an object");
  Parsed p;
  p.entry.name = name;
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::string field;
  r.begin_object();
  while (r.next_key(field)) {
    if (field == "dtype") {
      ZAE_CHECK(!has_dtype, ctx, ": field 'dtype' appears twice");
      has_dtype = true;
      const Kind fk = r.peek();
      if (fk != Kind::string) ZAE_FAIL(ctx, ": field 'dtype' must be a string, found a JSON ", json::kind_name(fk));
      p.entry.dtype = r.read_string();
      p.dtype = detail::find_st_dtype(p.entry.dtype);
      ZAE_CHECK(p.dtype != nullptr, ctx, ": unknown dtype ", json::quote(p.entry.dtype),
                " (known: BOOL U8 I8 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64 C64 F4 F6_E2M3 F6_E3M2 F8_E4M3 F8_E5M2 "
                "F8_E8M0 F8_E4M3FNUZ F8_E5M2FNUZ)");
    } else if (field == "shape") {
      ZAE_CHECK(!has_shape, ctx, ": field 'shape' appears twice");
      has_shape = true;
      expect_array(r, ctx, "shape", "an array of integers");
      while (r.next_element()) {
        const auto d = static_cast<int64_t>(p.entry.shape.size());
        const uint64_t v = read_u64(r, ctx, "shape", d);
        ZAE_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ctx, ": shape[", d, "] = ", v,
                  " exceeds 2^63-1");
        p.entry.shape.push_back(static_cast<int64_t>(v));
      }
    } else if (field == "data_offsets") {
      ZAE_CHECK(!has_offsets, ctx, ": field 'data_offsets' appears twice");
      has_offsets = true;
      expect_array(r, ctx, "data_offsets", "an array of 2 integers [begin, end]");
      uint64_t v[2] = {0, 0};
      size_t count = 0;
      while (r.next_element()) {
        ZAE_CHECK(count < 2, ctx, ": field 'data_offsets' must hold exactly 2 integers [begin, end], found more");
        v[count] = read_u64(r, ctx, count == 0 ? "data_offsets[0] (begin)" : "data_offsets[1] (end)");
        ++count;
      }
      ZAE_CHECK(count == 2, ctx, ": field 'data_offsets' must hold exactly 2 integers [begin, end], found ", count);
      p.entry.begin = v[0];
      p.entry.end = v[1];
    } else {
      ZAE_FAIL(ctx, ": unexpected field ", json::quote(field), " (an entry holds exactly dtype, shape, data_offsets)");
    }
  }
  ZAE_CHECK(has_dtype, ctx, ": missing field 'dtype'");
  ZAE_CHECK(has_shape, ctx, ": missing field 'shape'");
  ZAE_CHECK(has_offsets, ctx, ": missing field 'data_offsets'");

  // Size checks with checked arithmetic: a wrapped product must never pass.
  uint64_t count = 1;
  for (int64_t d : p.entry.shape) {
    ZAE_CHECK(!__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count), ctx, ": element count of shape ",
              detail::shape_text(p.entry.shape), " overflows 64 bits");
  }
  // Bytes = count x bytes per element; sub-byte dtypes (F4, F6_*) go through bits.
  const uint64_t bits_each = p.dtype->bits;
  const bool whole = bits_each % 8 == 0;
  uint64_t size = 0;
  ZAE_CHECK(!__builtin_mul_overflow(count, whole ? bits_each / 8 : bits_each, &size), ctx, ": byte size of shape ",
            detail::shape_text(p.entry.shape), " x ", p.entry.dtype, " overflows 64 bits");
  if (!whole) {
    ZAE_CHECK(size % 8 == 0, ctx, ": shape ", detail::shape_text(p.entry.shape), " of ", p.entry.dtype, " (",
              bits_each, " bits each) does not fill whole bytes");
    size /= 8;
  }
  ZAE_CHECK(p.entry.end >= p.entry.begin, ctx, ": data_offsets [", p.entry.begin, ", ", p.entry.end,
            "] end before they begin");
  ZAE_CHECK(p.entry.end - p.entry.begin == size, ctx, ": data_offsets [", p.entry.begin, ", ", p.entry.end,
            "] span ", p.entry.end - p.entry.begin, " bytes but shape ", detail::shape_text(p.entry.shape), " of ",
            p.entry.dtype, " needs ", size);
  return p;
}

void parse_metadata(json::Reader& r, const std::string& origin, std::map<std::string, std::string>& out) {
  const std::string ctx = where(origin) + ": __metadata__";
  const Kind k = r.peek();
  if (k != Kind::object) ZAE_FAIL(ctx, " is a JSON ", json::kind_name(k), ", not an object of strings");
  r.begin_object();
  std::string key;
  while (r.next_key(key)) {
    const Kind vk = r.peek();
    if (vk != Kind::string)
      ZAE_FAIL(ctx, ": value of key ", json::quote(key), " is a JSON ", json::kind_name(vk), ", not a string");
    std::string value = r.read_string();
    ZAE_CHECK(out.emplace(key, std::move(value)).second, ctx, ": key ", json::quote(key), " appears twice");
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& origin) {
  const std::string w = where(origin);
  ZAE_CHECK(size >= 8, w, ": file is ", size, " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian u64
  ZAE_CHECK(n <= detail::kMaxHeaderSize, w, ": header length ", n, " exceeds the limit of ", detail::kMaxHeaderSize,
            " bytes");
  ZAE_CHECK(n <= size - 8, w, ": header length ", n, " runs past the end of the file (8 + ", n, " > ", size,
            " bytes)");
  const std::string_view text(reinterpret_cast<const char*>(data) + 8, static_cast<size_t>(n));
  const size_t bad = json::find_invalid_utf8(text);
  ZAE_CHECK(bad == std::string_view::npos, w, ": header is not valid UTF-8 (byte ", bad, " of the header)");
  {
    // Syntax first, over the whole header: invalid JSON anywhere is reported as such.
    json::Reader syntax(text, w + ": header");
    const Kind k = syntax.peek();
    syntax.skip_value();
    syntax.end();
    ZAE_CHECK(k == Kind::object, w, ": header is a JSON ", json::kind_name(k), ", not an object");
  }

  SafetensorsHeader h;
  h.header_size = n;
  h.file_size = size;
  std::vector<Parsed> parsed;
  std::unordered_set<std::string> names;
  bool has_metadata = false;
  json::Reader r(text, w + ": header");
  r.begin_object();
  std::string key;
  while (r.next_key(key)) {
    if (key == "__metadata__") {
      ZAE_CHECK(!has_metadata, w, ": \"__metadata__\" appears twice in the header");
      has_metadata = true;
      parse_metadata(r, origin, h.metadata);
      continue;
    }
    ZAE_CHECK(names.insert(key).second, w, ": tensor name ", json::quote(key), " appears twice in the header");
    parsed.push_back(parse_entry(r, origin, key));
  }
  r.end();

  // Layout: sorted by offsets, the tensors must tile the data buffer exactly.
  std::stable_sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) {
    return a.entry.begin != b.entry.begin ? a.entry.begin < b.entry.begin : a.entry.end < b.entry.end;
  });
  uint64_t expected = 0;
  const std::string* previous = nullptr;
  for (const Parsed& p : parsed) {
    const SafetensorsEntry& e = p.entry;
    if (e.begin > expected) {
      ZAE_FAIL(w, ": tensor ", json::quote(e.name), " starts at byte ", e.begin, " of the data buffer, but ",
               previous ? "the previous tensor " + json::quote(*previous) + " ends" : std::string("the data starts"),
               " at byte ", expected, " (a gap of ", e.begin - expected, " bytes)");
    }
    ZAE_CHECK(e.begin == expected, w, ": tensor ", json::quote(e.name), " (bytes [", e.begin, ", ", e.end,
              ")) overlaps tensor ", json::quote(previous ? *previous : std::string()), " (which ends at byte ",
              expected, ")");
    expected = e.end;
    previous = &e.name;
  }
  const uint64_t buffer = size - 8 - n;
  ZAE_CHECK(expected == buffer, w, ": the tensors end at byte ", expected, " of the data buffer, but the file holds ",
            buffer, " bytes after the header (file size ", size, " != 8 + ", n, " + ", expected, ")");
  h.entries.reserve(parsed.size());
  for (Parsed& p : parsed) h.entries.push_back(std::move(p.entry));
  return h;
}

}  // namespace zae::io
