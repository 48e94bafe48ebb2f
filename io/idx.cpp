// IDX reading and writing over zlib's gz* interface (which also reads plain files).
// The payload is read into a buffer that grows only as bytes arrive, then converted
// from big-endian into the output tensor.
#include "io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <vector>

#include "engine/error.h"

namespace zae {

namespace {

struct IdxType {
  uint8_t code;
  const char* name;
  size_t size;  // bytes per element in the file
  DType dtype;  // what it loads as
};

constexpr IdxType kIdxTypes[] = {
    {0x08, "uint8", 1, DType::uint8},    {0x09, "int8", 1, DType::int32},     {0x0B, "int16", 2, DType::int32},
    {0x0C, "int32", 4, DType::int32},    {0x0D, "float32", 4, DType::float32}, {0x0E, "float64", 8, DType::float64},
};

const IdxType* find_type(uint8_t code) {
  for (const IdxType& t : kIdxTypes)
    if (t.code == code) return &t;
  return nullptr;
}

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

// Owns a gzFile; reads with clear errors that name the file.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    ZAE_CHECK(std::filesystem::exists(path, ec), "read_idx: '", path, "' does not exist");
    ZAE_CHECK(!std::filesystem::is_directory(path, ec), "read_idx: '", path, "' is a directory, not an IDX file");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    ZAE_CHECK(file_ != nullptr, "read_idx: cannot open '", path, "': ", errno ? std::strerror(errno) : "out of memory");
    gzbuffer(file_, 1 << 18);
  }
  ~GzReader() {
    if (file_) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; returns how many arrived (fewer only at the end of the data).
  size_t read_some(void* dst, size_t n) {
    size_t done = 0;
    auto* out = static_cast<unsigned char*>(dst);
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) fail_stream();
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  // After a short read or at the end: a gzip stream cut short or damaged is an error.
  void check_stream_end(const char* where) {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    if (errnum == Z_BUF_ERROR)
      ZAE_FAIL("read_idx: '", path_, "': the gzip stream is truncated ", where, " (", msg, ")");
    if (errnum != Z_OK) fail_stream();
  }

  [[noreturn]] void fail_stream() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    if (errnum == Z_ERRNO) ZAE_FAIL("read_idx: '", path_, "': read error: ", std::strerror(errno));
    ZAE_FAIL("read_idx: '", path_, "': the gzip stream is damaged (zlib: ", msg, ")");
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

template <class T>
T load_be(const unsigned char* p) {
  static_assert(sizeof(T) <= 8);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v = (v << 8) | p[i];
  if constexpr (sizeof(T) == 8) {
    T out;
    std::memcpy(&out, &v, 8);
    return out;
  } else {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>>;
    U u = static_cast<U>(v);
    T out;
    std::memcpy(&out, &u, sizeof(T));
    return out;
  }
}

// Converts n big-endian file elements of `type` into the output tensor's buffer.
void convert(const IdxType& type, const unsigned char* src, void* dst, int64_t n) {
  switch (type.code) {
    case 0x08: std::memcpy(dst, src, static_cast<size_t>(n)); return;
    case 0x09: {
      auto* out = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(src[i]);
      return;
    }
    case 0x0B: {
      auto* out = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = load_be<int16_t>(src + 2 * i);
      return;
    }
    case 0x0C: {
      auto* out = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = load_be<int32_t>(src + 4 * i);
      return;
    }
    case 0x0D: {
      auto* out = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = load_be<float>(src + 4 * i);
      return;
    }
    case 0x0E: {
      auto* out = static_cast<double*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = load_be<double>(src + 8 * i);
      return;
    }
    default: ZAE_FAIL("read_idx: internal error: unhandled type code ", hex_byte(type.code));
  }
}

std::string known_types() {
  std::ostringstream os;
  for (size_t i = 0; i < std::size(kIdxTypes); ++i)
    os << (i ? ", " : "") << hex_byte(kIdxTypes[i].code) << ' ' << kIdxTypes[i].name;
  return os.str();
}

}  // namespace

Tensor read_idx(const std::string& path) {
  GzReader in(path);
  unsigned char magic[4];
  const size_t got_magic = in.read_some(magic, 4);
  if (got_magic < 4) {
    in.check_stream_end("inside the header");
    ZAE_FAIL("read_idx: '", path, "': truncated header: the file holds ", got_magic,
             " bytes, an IDX header needs at least 4 (0x00 0x00 <type> <ndims>)");
  }
  ZAE_CHECK(magic[0] == 0 && magic[1] == 0, "read_idx: '", path, "': bad magic ", hex_byte(magic[0]), ' ',
            hex_byte(magic[1]), ' ', hex_byte(magic[2]), ' ', hex_byte(magic[3]),
            " (an IDX file starts with 0x00 0x00 <type> <ndims>); is this an IDX file?");
  const IdxType* type = find_type(magic[2]);
  ZAE_CHECK(type != nullptr, "read_idx: '", path, "': unknown data type code ", hex_byte(magic[2]), " (known: ",
            known_types(), ")");
  const int ndims = magic[3];
  ZAE_CHECK(ndims <= kMaxDims, "read_idx: '", path, "': the header announces ", ndims, " dimensions; at most ",
            kMaxDims, " are supported");

  unsigned char dim_bytes[4 * kMaxDims];
  const size_t dims_len = 4 * static_cast<size_t>(ndims);
  const size_t got_dims = in.read_some(dim_bytes, dims_len);
  if (got_dims < dims_len) {
    in.check_stream_end("inside the header");
    ZAE_FAIL("read_idx: '", path, "': truncated header: ", ndims, " dimensions need ", dims_len,
             " bytes of sizes after the magic, the file holds ", got_dims);
  }
  Shape shape(static_cast<size_t>(ndims));
  for (int d = 0; d < ndims; ++d) shape[static_cast<size_t>(d)] = load_be<uint32_t>(dim_bytes + 4 * d);
  int64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const int64_t s = shape[static_cast<size_t>(d)];
    ZAE_CHECK(s <= kIdxMaxElements && (s == 0 || count <= kIdxMaxElements / s), "read_idx: '", path,
              "': the header announces sizes ", shape_str(shape), ", more than the 2^31 elements this reader accepts",
              " (a corrupt or hostile header?)");
    count *= s;
  }

  // The payload, growing only as data arrives.
  const size_t payload = static_cast<size_t>(count) * type->size;
  std::vector<unsigned char> buffer;
  size_t have = 0;
  while (have < payload) {
    const size_t want = std::min(payload, std::max<size_t>(buffer.size() * 2, size_t{1} << 20));
    buffer.resize(want);
    const size_t got = in.read_some(buffer.data() + have, want - have);
    have += got;
    if (have < want) break;
  }
  if (have < payload) {
    in.check_stream_end("inside the data");
    ZAE_FAIL("read_idx: '", path, "': the file is shorter than its header says: shape ", shape_str(shape), " of ",
             type->name, " needs ", payload, " bytes of data, the file holds ", have);
  }
  unsigned char extra[4096];
  const size_t trailing = in.read_some(extra, sizeof(extra));
  ZAE_CHECK(trailing == 0, "read_idx: '", path, "': ", trailing, trailing == sizeof(extra) ? " or more" : "",
            trailing == 1 ? " trailing byte after" : " trailing bytes after the ", payload, " bytes of data that the header (shape ", shape_str(shape), " of ",
            type->name, ") announces");
  in.check_stream_end("at its end (the gzip trailer is missing)");

  Tensor out = Tensor::empty(shape, {.dtype = type->dtype});
  if (count > 0) convert(*type, buffer.data(), out.raw_data(), count);
  return out;
}

void write_idx(const std::string& path, const Tensor& t, bool gzip) {
  static_assert(std::endian::native == std::endian::little, "write_idx swaps bytes assuming a little-endian host");
  ZAE_CHECK(t.defined(), "write_idx: undefined tensor (writing '", path, "')");
  uint8_t code = 0;
  switch (t.dtype()) {
    case DType::uint8: code = 0x08; break;
    case DType::int32: code = 0x0C; break;
    case DType::float32: code = 0x0D; break;
    case DType::float64: code = 0x0E; break;
    default:
      ZAE_FAIL("write_idx: dtype ", t.dtype(), " has no IDX type (supported: uint8, int32, float32, float64); "
               "convert with .to(...) first (writing '", path, "')");
  }
  const Tensor src = t.cpu().contiguous();
  errno = 0;
  gzFile f = gzopen(path.c_str(), gzip ? "wb6" : "wbT");
  ZAE_CHECK(f != nullptr, "write_idx: cannot open '", path, "' for writing: ", errno ? std::strerror(errno) : "error");
  auto put = [&](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
      if (gzwrite(f, p, chunk) != static_cast<int>(chunk)) {
        int errnum = Z_OK;
        std::string msg = gzerror(f, &errnum);
        if (errnum == Z_ERRNO) msg = std::strerror(errno);
        gzclose(f);
        ZAE_FAIL("write_idx: writing '", path, "' failed: ", msg);
      }
      p += chunk;
      n -= chunk;
    }
  };
  std::vector<unsigned char> header = {0, 0, code, static_cast<unsigned char>(src.dim())};
  for (int64_t d = 0; d < src.dim(); ++d) {
    const int64_t s = src.size(d);
    if (s > 0xFFFFFFFFll) {
      gzclose(f);
      ZAE_FAIL("write_idx: size ", s, " of dim ", d, " does not fit IDX's 32-bit sizes (writing '", path, "')");
    }
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<unsigned char>(s >> shift));
  }
  put(header.data(), header.size());
  const size_t esize = src.element_size();
  const auto* bytes = static_cast<const unsigned char*>(src.raw_data());
  std::vector<unsigned char> chunk;
  const int64_t n = src.numel();
  const int64_t per_chunk = std::max<int64_t>(1, (int64_t{1} << 20) / static_cast<int64_t>(esize));
  for (int64_t start = 0; start < n; start += per_chunk) {
    const int64_t m = std::min(per_chunk, n - start);
    chunk.resize(static_cast<size_t>(m) * esize);
    const unsigned char* from = bytes + static_cast<size_t>(start) * esize;
    for (int64_t i = 0; i < m; ++i)  // host little-endian -> big-endian
      for (size_t b = 0; b < esize; ++b) chunk[static_cast<size_t>(i) * esize + b] = from[i * esize + (esize - 1 - b)];
    put(chunk.data(), chunk.size());
  }
  const int rc = gzclose(f);
  ZAE_CHECK(rc == Z_OK, "write_idx: closing '", path, "' failed (zlib code ", rc, ")");
}

}  // namespace zae
