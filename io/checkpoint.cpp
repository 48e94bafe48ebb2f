// .ckpt writer and reader (format in io/checkpoint.h).
#include "io/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <string_view>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace zae::io {

namespace {

constexpr const char* kFormatKey = "format";
constexpr const char* kFormat = "zae-ckpt";
constexpr const char* kVersionKey = "zae.ckpt.version";
constexpr const char* kStateKey = "zae.ckpt.state";
constexpr const char* kChecksumKey = "zae.ckpt.checksum";
constexpr const char* kUserPrefix = "user.";
constexpr std::string_view kChecksumZero = "crc32:00000000";
// The checksum member as the header spells it (keys and values need no JSON escaping);
// inside any other JSON string its quotes would be escaped, so this text is unique.
constexpr std::string_view kChecksumMember = "\"zae.ckpt.checksum\":\"crc32:";

std::string hex8(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = digits[v & 0xf];
  return s;
}

// Offset of the 8 checksum digits within [8, 8 + header_size), found exactly once.
size_t checksum_digits_at(const uint8_t* data, uint64_t header_size, const std::string& origin) {
  std::string_view header(reinterpret_cast<const char*>(data) + 8, header_size);
  const size_t at = header.find(kChecksumMember);
  ZAE_CHECK(at != std::string_view::npos, origin, ": not a valid zae checkpoint: the header has no \"", kChecksumKey,
            "\" member in the form \"crc32:XXXXXXXX\"");
  ZAE_CHECK(header.find(kChecksumMember, at + 1) == std::string_view::npos, origin,
            ": not a valid zae checkpoint: the checksum member appears twice");
  const size_t digits = at + kChecksumMember.size();
  ZAE_CHECK(digits + 9 <= header.size() && header[digits + 8] == '"', origin,
            ": not a valid zae checkpoint: the checksum is not 8 hex digits");
  return 8 + digits;
}

uint32_t file_crc(const uint8_t* data, size_t size, size_t digits_at) {
  uint32_t crc = crc32_update(0, data, digits_at);
  crc = crc32_update(crc, "00000000", 8);
  return crc32_update(crc, data + digits_at + 8, size - digits_at - 8);
}

struct Verified {
  SafetensorsHeader header;
  json::Value state;
  std::map<std::string, std::string> user;
  int version = 0;
  uint32_t checksum = 0;
};

Verified verify_image(const uint8_t* data, size_t size, const std::string& origin) {
  Verified v;
  v.header = parse_safetensors_header(data, size, origin);
  const auto& md = v.header.metadata;
  auto fmt = md.find(kFormatKey);
  ZAE_CHECK(fmt != md.end() && fmt->second == kFormat, origin, ": not a zae checkpoint (a safetensors file whose "
            "metadata \"format\" is ", fmt == md.end() ? std::string("absent") : json::quote(fmt->second),
            ", not \"", kFormat, "\"); load weights-only files with load_safetensors");
  auto ver = md.find(kVersionKey);
  ZAE_CHECK(ver != md.end(), origin, ": zae checkpoint without \"", kVersionKey, "\"");
  uint64_t version = 0;
  ZAE_CHECK(json::to_uint64(ver->second, version) == json::IntStatus::ok && version >= 1, origin,
            ": invalid checkpoint version ", json::quote(ver->second));
  ZAE_CHECK(version <= static_cast<uint64_t>(kCheckpointVersion), origin, ": checkpoint version ", version,
            " is newer than this build reads (", kCheckpointVersion, "); update zae");
  v.version = static_cast<int>(version);
  auto sum = md.find(kChecksumKey);
  ZAE_CHECK(sum != md.end(), origin, ": zae checkpoint without \"", kChecksumKey, "\"");
  const size_t digits_at = checksum_digits_at(data, v.header.header_size, origin);
  const std::string stored(reinterpret_cast<const char*>(data) + digits_at, 8);
  ZAE_CHECK(sum->second == "crc32:" + stored, origin, ": the checksum member is malformed");
  uint32_t want = 0;
  for (char c : stored) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    ZAE_CHECK(d >= 0, origin, ": checksum ", json::quote(sum->second), " is not 8 lowercase hex digits");
    want = (want << 4) | static_cast<uint32_t>(d);
  }
  const uint32_t got = file_crc(data, size, digits_at);
  ZAE_CHECK(got == want, origin, ": checksum mismatch: the file says crc32:", stored, ", its contents give crc32:",
            hex8(got), " (the file is damaged or was modified)");
  v.checksum = got;
  auto st = md.find(kStateKey);
  ZAE_CHECK(st != md.end(), origin, ": zae checkpoint without \"", kStateKey, "\"");
  v.state = json::parse(st->second, origin + ": training state");
  ZAE_CHECK(v.state.kind == json::Kind::object, origin, ": the training state is a ", json::kind_name(v.state.kind),
            ", not an object");
  for (const auto& [k, val] : md)
    if (k.rfind(kUserPrefix, 0) == 0) v.user[k.substr(std::strlen(kUserPrefix))] = val;
  return v;
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  return static_cast<uint32_t>(::crc32_z(crc, static_cast<const Bytef*>(data), size));
}

Tensor Checkpoint::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return Tensor();
}

bool is_checkpoint(const SafetensorsHeader& header) {
  auto it = header.metadata.find(kFormatKey);
  return it != header.metadata.end() && it->second == kFormat;
}

std::string serialize_checkpoint(const Checkpoint& ckpt) {
  ZAE_CHECK(ckpt.state.kind == json::Kind::object, "save_checkpoint: the state must be a JSON object, got a ",
            json::kind_name(ckpt.state.kind));
  std::map<std::string, std::string> md;
  for (const auto& [k, v] : ckpt.user_metadata) md[kUserPrefix + k] = v;
  md[kFormatKey] = kFormat;
  md[kVersionKey] = std::to_string(kCheckpointVersion);
  md[kStateKey] = json::dump(ckpt.state);
  md[kChecksumKey] = std::string(kChecksumZero);
  std::string bytes = serialize_safetensors(ckpt.tensors, md);
  auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  uint64_t header_size = 0;
  std::memcpy(&header_size, data, 8);
  const size_t at = checksum_digits_at(data, header_size, "save_checkpoint");
  const std::string digits = hex8(file_crc(data, bytes.size(), at));
  bytes.replace(at, 8, digits);
  return bytes;
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const std::string bytes = serialize_checkpoint(ckpt);
  write_file_atomic(path, bytes);
}

Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& origin,
                            const SafetensorsLoadOptions& options) {
  Verified v = verify_image(data, size, origin);
  Checkpoint out;
  out.state = std::move(v.state);
  out.user_metadata = std::move(v.user);
  out.tensors = parse_safetensors(data, size, origin, options).tensors;
  return out;
}

Checkpoint load_checkpoint(const std::string& path, const SafetensorsLoadOptions& options) {
  MappedFile file(path, "load_checkpoint");
  return parse_checkpoint(file.data(), file.size(), path, options);
}

CheckpointInfo verify_checkpoint(const std::string& path) {
  MappedFile file(path, "verify_checkpoint");
  Verified v = verify_image(file.data(), file.size(), path);
  (void)parse_safetensors(file.data(), file.size(), path);  // tensor bytes too (e.g. BOOL values)
  CheckpointInfo info;
  info.header = std::move(v.header);
  info.state = std::move(v.state);
  info.user_metadata = std::move(v.user);
  info.version = v.version;
  info.checksum = v.checksum;
  return info;
}

}  // namespace zae::io
