// zae-ckpt: inspect, verify and convert checkpoints (.ckpt, io/checkpoint.h) and plain
// safetensors files. The commands live here, in the zae_apps library, so that tests
// call them directly; apps/zae_ckpt.cpp is only main().
//
// Invariants: no command writes to stdout/stderr directly (they take the streams);
// every failure a file can cause (missing, a directory, truncated, garbage, a bad
// checksum, hostile headers) is a zae::Error from the readers, turned by run_ckpt_cli
// into the reader's message on `err` and exit status 1, never a crash. Usage errors
// are exit status 2. convert writes crash-safely (io::save_safetensors) and never over
// its input.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace zae::apps::ckpt {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  ///< the file failed a check, or could not be read or written
inline constexpr int kExitUsage = 2;   ///< bad command line

/// `zae-ckpt inspect FILE`: the tensor table (name, dtype, shape, bytes) with totals
/// and the metadata; for a .ckpt (verified first) also the format version, checksum,
/// user metadata and a summary of the training state. With `state_json`, prints only
/// the training state JSON, pretty-printed (a .ckpt only). Throws zae::Error.
void inspect(const std::string& path, bool state_json, std::ostream& out);

/// `zae-ckpt verify FILE`: every check the readers make (verify_checkpoint for a .ckpt,
/// load_safetensors for a plain safetensors file); on success returns the line
/// "OK: <file>: N tensors, crc32 XXXXXXXX, ..." (without newline). Throws zae::Error.
std::string verify(const std::string& path);

struct ConvertOptions {
  bool best = false;  ///< take the "best." weights instead of "model."
};
/// `zae-ckpt convert IN.ckpt OUT.safetensors`: writes the model weights of a verified
/// .ckpt ("model." or, with best, "best." prefix stripped) as safetensors with metadata
/// epoch, step, source (IN's file name), weights ("model"/"best") and the checkpoint's
/// user metadata; returns a one-line report. Refuses an input that is not a .ckpt and
/// an output that is the input. Throws zae::Error.
std::string convert(const std::string& in, const std::string& out, const ConvertOptions& options = {});

/// The whole command line (args excludes the program name); returns the exit status.
int run_ckpt_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace zae::apps::ckpt
