// safetensors (Hugging Face's weight format): u64 little-endian N, N bytes of UTF-8
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the packed little-endian data buffer.
//
// Writer: the reference writer's bytes exactly — "__metadata__" first when non-empty,
// tensors sorted by the reference's dtype order (8-byte types first: U64 I64 F64,
// then F32 I32, BF16 F16, U8 BOOL; ties by name, bytewise), packed without gaps,
// compact JSON padded with spaces to a multiple of 8. (Metadata keys are written in
// sorted order; the reference writes them in hash order, so files with two or more
// metadata keys can differ from its output in the header's key order only.)
//
// Reader: validates the whole header and the file layout before reading any tensor
// data (see parse_safetensors); every rejection is a zae::Error that names the file
// (the `origin`) and the offending tensor or field. Engine dtypes map to F32, F64,
// BF16, F16, I32, I64, U8, BOOL; U16 U32 U64 I8 I16 load only on request (widened);
// F8_*, F6_*, F4 and C64 are known but unsupported.
//
// Tied weights: save_module_safetensors writes a tensor shared by several state-dict
// names once, under its first name, and records each other name in the metadata as
// {alias: kept name} (the convention of safetensors.torch.save_model);
// load_safetensors_into fills every name of a tied group from the one stored.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "nn/module.h"

namespace zae::io {

/// Tensors by name, in the order given (writing) or in data-offset order (reading),
/// plus string metadata.
struct SafetensorsData {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
};

/// Writes `tensors` (any engine dtype, any layout or device: non-contiguous tensors
/// are made contiguous, CUDA tensors copied to the CPU) and `metadata` to `path`
/// crash-safely (io/atomic_file.h). Errors: an undefined tensor, a name given twice,
/// the name "__metadata__", names or metadata that are not UTF-8, and two names whose
/// tensors share memory (write tied weights with save_module_safetensors, or clone).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// The bytes save_safetensors writes.
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

struct SafetensorsLoadOptions {
  /// Where the loaded tensors go (default: the CPU).
  std::optional<Device> device;
  /// A floating dtype that floating tensors are converted to; integer and bool
  /// tensors keep theirs (as Module::to).
  std::optional<DType> dtype;
  /// Read U16/U32/U64/I8/I16 into int32/int64/int64/int32/int32 (U64 values above
  /// 2^63-1 are an error); without it those dtypes are an error that says so.
  bool widen_unsupported = false;
};

/// Memory-maps `path` (read-only), validates everything, copies the tensors out and unmaps.
SafetensorsData load_safetensors(const std::string& path, const SafetensorsLoadOptions& options = {});

/// Parses a safetensors image held in memory; `origin` names it in errors. Checks, each
/// a distinct error: size < 8; N > 100,000,000; 8 + N past the end; header not UTF-8;
/// invalid JSON; header not an object; duplicate tensor names (JSON duplicate keys; also
/// refused within metadata and entries); an entry that is not an object, lacks or repeats
/// a field or has an unknown one, or a field of the wrong type; unknown dtype;
/// "__metadata__" not an object or with non-string values; negative, fractional or overflowing numbers;
/// shape dims above 2^63-1; element count or byte size overflowing 64 bits;
/// end < begin; end - begin != element count x dtype size; offsets not contiguous from
/// 0 (gaps, overlaps); 8 + N + last end != size. Then, while converting: unsupported
/// dtypes, more than 8 dims, BOOL bytes other than 0 and 1, U64 values above 2^63-1.
SafetensorsData parse_safetensors(const uint8_t* data, size_t size, const std::string& origin,
                                  const SafetensorsLoadOptions& options = {});

/// One tensor's header entry.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  ///< as in the file ("F32", "F8_E4M3", ...)
  Shape shape;
  uint64_t begin = 0, end = 0;  ///< byte offsets in the data buffer, end exclusive
};
/// A validated header: entries in file order (ascending data offsets).
struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  uint64_t header_size = 0;  ///< N
  uint64_t file_size = 0;
};

/// The header of `path`, fully validated (all the layout checks of parse_safetensors;
/// unsupported-but-known dtypes are listed, not rejected), without reading tensor data.
SafetensorsHeader read_safetensors_header(const std::string& path);
/// The same, for an image in memory.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& origin);

/// Loads `path` into `module`'s parameters and buffers (Module::load_state_dict: strict
/// or not, shapes must match, values converted to each tensor's dtype and device).
/// Names tied in the module (one tensor under several names) are all filled from
/// whichever of them the file holds.
nn::LoadResult load_safetensors_into(nn::Module& module, const std::string& path, bool strict = true);

/// Writes module.state_dict(); a tensor tied under several names is stored once, under
/// its first name, with metadata {other name: first name} for each other name (user
/// metadata with the same key wins). Distinct names that partially overlap in memory
/// are an error.
void save_module_safetensors(const nn::Module& module, const std::string& path,
                             const std::map<std::string, std::string>& metadata = {});

}  // namespace zae::io
