// Reading safetensors: the file is memory-mapped read-only (MAP_PRIVATE), the header
// and layout are validated completely (safetensors_header.cpp), and only then are the
// tensors copied out into engine tensors; the mapping is released on every path.
// Invariant: no tensor byte is read before every entry has passed validation, and no
// byte outside [8 + N, size) is read as tensor data.
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/mapped_file.h"
#include "io/safetensors_format.h"

namespace zae::io {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace {

using detail::where;

// Copies `count` little-endian Src values into Dst (integer widening).
template <class Src, class Dst>
void widen(const uint8_t* src, Dst* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    Src v;
    std::memcpy(&v, src + static_cast<size_t>(i) * sizeof(Src), sizeof(Src));
    dst[i] = static_cast<Dst>(v);
  }
}

// Fills `t` (engine dtype `to`) from the file bytes of an entry with file dtype `st`.
void convert_into(const Tensor& t, const detail::StDType& st, const uint8_t* src, const std::string& ctx) {
  const int64_t n = t.numel();
  if (n == 0) return;
  const std::string_view name = st.name;
  if (st.engine) {
    if (st.engine == DType::bool_) {
      // A C++ bool must hold 0 or 1; any other byte would be undefined behaviour to read.
      for (int64_t i = 0; i < n; ++i)
        ZAE_CHECK(src[i] <= 1, ctx, ": BOOL element ", i, " holds byte ", static_cast<int>(src[i]),
                  " (a BOOL byte must be 0 or 1)");
    }
    std::memcpy(t.raw_data(), src, t.nbytes());
    return;
  }
  if (name == "I8") return widen<int8_t>(src, t.data<int32_t>(), n);
  if (name == "I16") return widen<int16_t>(src, t.data<int32_t>(), n);
  if (name == "U16") return widen<uint16_t>(src, t.data<int32_t>(), n);
  if (name == "U32") return widen<uint32_t>(src, t.data<int64_t>(), n);
  if (name == "U64") {
    for (int64_t i = 0; i < n; ++i) {
      uint64_t v;
      std::memcpy(&v, src + static_cast<size_t>(i) * 8, 8);
      ZAE_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ctx, ": U64 element ", i, " = ", v,
                " does not fit in int64, the dtype U64 widens to");
    }
    return widen<uint64_t>(src, t.data<int64_t>(), n);
  }
  ZAE_FAIL(ctx, ": no conversion from ", name);
}

}  // namespace

SafetensorsData parse_safetensors(const uint8_t* data, size_t size, const std::string& origin,
                                  const SafetensorsLoadOptions& options) {
  const std::string w = where(origin);
  ZAE_CHECK(!options.dtype || is_floating(*options.dtype), w, ": SafetensorsLoadOptions.dtype must be a floating ",
            "dtype (it converts floating tensors), got ", *options.dtype);
  const SafetensorsHeader h = parse_safetensors_header(data, size, origin);

  // Everything the engine cannot represent is refused before any data is copied.
  std::vector<const detail::StDType*> dtypes;
  dtypes.reserve(h.entries.size());
  for (const SafetensorsEntry& e : h.entries) {
    const std::string ctx = w + ": tensor " + json::quote(e.name);
    const detail::StDType* st = detail::find_st_dtype(e.dtype);
    if (!st->engine) {
      ZAE_CHECK(st->widened, ctx, ": dtype ", e.dtype, " is not supported by the engine (its dtypes: F32 F64 BF16 ",
                "F16 I32 I64 U8 BOOL; U16 U32 U64 I8 I16 with widen_unsupported)");
      ZAE_CHECK(options.widen_unsupported, ctx, ": dtype ", e.dtype, " has no engine dtype; set ",
                "SafetensorsLoadOptions::widen_unsupported to read it as ", *st->widened);
    }
    ZAE_CHECK(e.shape.size() <= static_cast<size_t>(kMaxDims), ctx, ": shape ", detail::shape_text(e.shape), " has ",
              e.shape.size(), " dims; engine tensors have at most ", kMaxDims);
    dtypes.push_back(st);
  }

  SafetensorsData out;
  out.metadata = h.metadata;
  out.tensors.reserve(h.entries.size());
  const uint8_t* buffer = data + 8 + h.header_size;
  NoGradGuard no_grad;
  for (size_t i = 0; i < h.entries.size(); ++i) {
    const SafetensorsEntry& e = h.entries[i];
    const detail::StDType& st = *dtypes[i];
    Tensor t = Tensor::empty(e.shape, {.dtype = st.engine ? *st.engine : *st.widened});
    convert_into(t, st, buffer + e.begin, w + ": tensor " + json::quote(e.name));
    if (options.dtype && is_floating(t.dtype())) t = t.to(*options.dtype);
    if (options.device) t = t.to(*options.device);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

SafetensorsData load_safetensors(const std::string& path, const SafetensorsLoadOptions& options) {
  MappedFile file(path, "load_safetensors");
  return parse_safetensors(file.data(), file.size(), path, options);
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  MappedFile file(path, "read_safetensors_header");
  return parse_safetensors_header(file.data(), file.size(), path);
}

}  // namespace zae::io
