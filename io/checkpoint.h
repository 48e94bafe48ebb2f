// The .ckpt format: the complete training state in one file that ordinary tools open.
//
// A .ckpt file IS a safetensors file (io/safetensors.h): any safetensors reader lists
// and loads its tensors. Its "__metadata__" holds
//   "format"             "zae-ckpt"
//   "zae.ckpt.version"   "1"                (kCheckpointVersion; newer files are refused)
//   "zae.ckpt.state"     a JSON object (text): every non-tensor part of the state
//   "zae.ckpt.checksum"  "crc32:XXXXXXXX"   (8 lowercase hex digits)
//   "user.<key>"         the user's own metadata, as given
// The checksum is CRC-32 (zlib's crc32, the ISO-HDLC polynomial Python's zlib.crc32
// computes) of the whole file with those 8 hex digits read as "00000000": it covers
// the header (names, dtypes, shapes, offsets, metadata) and every data byte. To check
// it by hand: replace the digits by zeros and run zlib.crc32 over the file.
//
// Invariants: save_checkpoint writes crash-safely (io/atomic_file.h): a kill at any
// moment leaves the old file or the complete new one. load/verify accept a file only
// after the safetensors validation, the format tag, the version and the checksum have
// all passed; each failure is a distinct zae::Error naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "io/json.h"
#include "io/safetensors.h"

namespace zae::io {

inline constexpr int kCheckpointVersion = 1;

struct Checkpoint {
  /// Tensors by name (the trainer uses "model.", "optim.<i>.", "best.", "grad." prefixes).
  std::vector<std::pair<std::string, Tensor>> tensors;
  /// A JSON object with the rest of the state (counters, options, RNG, ...).
  json::Value state = json::Value::make_object();
  /// The user's own string metadata (stored as "user.<key>").
  std::map<std::string, std::string> user_metadata;

  /// The tensor named `name`, or an undefined Tensor.
  Tensor find(const std::string& name) const;
};

/// The file's bytes: safetensors with the metadata above and the checksum filled in.
std::string serialize_checkpoint(const Checkpoint& ckpt);
/// Writes `ckpt` to `path` crash-safely.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

/// Reads and fully verifies `path` (layout, format, version, checksum, state JSON, tensor bytes).
Checkpoint load_checkpoint(const std::string& path, const SafetensorsLoadOptions& options = {});
/// The same for an image in memory; `origin` names it in errors.
Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& origin,
                            const SafetensorsLoadOptions& options = {});

/// What verify_checkpoint reports about a valid file.
struct CheckpointInfo {
  SafetensorsHeader header;  ///< tensors (names, dtypes, shapes, offsets) and raw metadata
  json::Value state;
  std::map<std::string, std::string> user_metadata;
  int version = 0;
  uint32_t checksum = 0;
};
/// Every check load_checkpoint makes (tensor bytes included), keeping only the summary.
CheckpointInfo verify_checkpoint(const std::string& path);
/// Whether a safetensors header carries the "zae-ckpt" format tag.
bool is_checkpoint(const SafetensorsHeader& header);

/// zlib's CRC-32 of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

}  // namespace zae::io
