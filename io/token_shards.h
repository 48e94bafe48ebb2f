// Token shards in llm.c's format (GPT-2 pretraining data) and a Dataset over them.
//
// File layout (all little-endian): a 1024-byte header of 256 int32
// [20240520 (magic), 1 (version), n_tokens, 0, ...], then n_tokens uint16 token ids;
// the file is exactly 1024 + 2 * n_tokens bytes. llm.c names them e.g.
// "fineweb_train_000001.bin" / "fineweb_val_000000.bin".
//
// Invariants:
// - Readers validate before they read a token: the file size (empty, shorter than the
//   header, an odd number of token bytes), the magic, the version and n_tokens against
//   the file size (exact match). Every failure is a zae::Error naming the path, the field,
//   the expected and the found values. A hostile header can cause neither a read past
//   the file nor an allocation: n_tokens is checked against the mapped size first.
// - Writers are crash-safe (io/atomic_file.h): a reader sees the old file or the whole
//   new one. A mapping stays valid while a writer replaces the file (rename), but a file
//   truncated in place under a live mapping faults (SIGBUS), as with every mmap reader.
// - Random shards depend only on (seed, shard index, vocab_size): token i of shard s is
//   the same whatever tokens_per_shard or n_shards is (a longer shard extends a shorter).
// - TokenShardDataset: sample k is the k-th window of T + 1 tokens, taken at stride T
//   through each shard in turn (shards in the given order); a shard of n tokens holds
//   (n - 1) / T windows (its last tokens are left out when n - 1 is not a multiple of
//   T); no window crosses a shard boundary. get() reads the read-only mappings only:
//   it is thread-safe.
//
// The format functions live in zae::io (like safetensors and checkpoints); the Dataset
// in zae (like every Dataset, io/dataset.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace zae::io {

class MappedFile;

inline constexpr int32_t kTokenShardMagic = 20240520;
inline constexpr int32_t kTokenShardVersion = 1;
/// Header: 256 int32.
inline constexpr size_t kTokenShardHeaderBytes = 1024;
/// The most tokens one shard can hold (n_tokens is an int32).
inline constexpr int64_t kTokenShardMaxTokens = INT32_MAX;

/// A validated shard header.
struct TokenShardHeader {
  int32_t magic = kTokenShardMagic;
  int32_t version = kTokenShardVersion;
  int64_t n_tokens = 0;
};

/// Validates the header of the shard whose whole file is data[0, size) (`origin` names
/// it in errors): the size, magic, version and n_tokens, against `size` (see the file
/// comment). Reads at most the first 1024 bytes.
TokenShardHeader parse_token_shard_header(const uint8_t* data, size_t size, const std::string& origin);

/// The validated header of the shard at `path` (maps the file; reads the header only).
TokenShardHeader read_token_shard_header(const std::string& path);

/// Replaces `path` (crash-safe) with a shard of `tokens` (at most kTokenShardMaxTokens).
void write_token_shard(const std::string& path, std::span<const uint16_t> tokens);
inline void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  write_token_shard(path, std::span<const uint16_t>(tokens));
}

/// All tokens of the shard at `path` (validated), in a vector.
std::vector<uint16_t> read_token_shard(const std::string& path);

/// A read-only memory mapping of one validated shard.
class TokenShard {
 public:
  /// Maps and validates `path` (errors as parse_token_shard_header's).
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  /// n_tokens.
  int64_t size() const { return n_tokens_; }
  /// Token `index` (0 <= index < size(), checked).
  uint16_t at(int64_t index) const;
  /// Tokens [begin, begin + count) widened to int64 into dst (range checked).
  void copy_to(int64_t begin, int64_t count, int64_t* dst) const;
  /// Tokens [begin, begin + count) (range checked).
  std::vector<uint16_t> tokens(int64_t begin, int64_t count) const;

 private:
  void check_range(int64_t begin, int64_t count) const;
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  const uint8_t* token_bytes_ = nullptr;  // little-endian uint16, n_tokens_ of them
  int64_t n_tokens_ = 0;
};

/// The deterministic random tokens of shard `shard_index`: n ids uniform in
/// [0, vocab_size) (1 <= vocab_size <= 65536) from Philox keyed by `seed`; token i is
/// drawn from word i % 4 of counter block (shard_index << 40) + i / 4 (so shards never
/// share a block below 2^42 tokens) and reduced by (word * vocab_size) >> 32.
std::vector<uint16_t> random_tokens(int64_t n, int64_t vocab_size, uint64_t seed, int64_t shard_index = 0);

/// Writes n_shards files "<dir>/<prefix>_<shard, 6 digits>.bin" (dir created if missing),
/// shard s holding random_tokens(tokens_per_shard, vocab_size, seed, s), in chunks (no
/// allocation of a whole shard). Returns their paths in order. For tests and benchmarks:
/// e.g. prefix "random_train" gives llm.c-style names that "*_train_*.bin" matches.
std::vector<std::string> write_random_token_shards(const std::string& dir, const std::string& prefix,
                                                   int64_t n_shards, int64_t tokens_per_shard,
                                                   int64_t vocab_size, uint64_t seed);

/// Regular files in `dir` whose names match the glob `pattern` (fnmatch: * ? [...]),
/// sorted by name (byte order). An unreadable directory is an error; no match gives {}.
std::vector<std::string> list_token_shards(const std::string& dir, const std::string& pattern = "*.bin");

/// The shard files a command-line spec names, in order. `spec` is a comma-separated list
/// of items; each item is a directory (its "*.bin" files, sorted), a glob pattern
/// ("data/*_train_*.bin": the matching files, sorted) or a file. An item that names
/// nothing (a missing file, a pattern or directory without matches) is an error naming it.
std::vector<std::string> resolve_token_shards(const std::string& spec);

}  // namespace zae::io

namespace zae {

/// Next-token windows over llm.c token shards: get(k) = {"x": int64 (T), "y": int64 (T)}
/// with x = tokens[i, i + T) and y = tokens[i + 1, i + T + 1) of window k (see the file
/// comment); a DataLoader stacks them to (B, T). Shard across ranks with
/// DataLoaderOptions::sampler = DistributedSampler.
class TokenShardDataset : public Dataset {
 public:
  /// Maps and validates every shard in `paths` (in that order). seq_len (T) >= 1; at
  /// least one shard must hold T + 1 tokens (else an error naming the shard sizes).
  /// From a command-line spec: TokenShardDataset(io::resolve_token_shards(spec), T).
  TokenShardDataset(std::vector<std::string> paths, int64_t seq_len);
  ~TokenShardDataset() override;

  /// The number of windows.
  int64_t size() const override { return total_windows_; }
  Batch get(int64_t index) const override;

  int64_t seq_len() const { return seq_len_; }
  int64_t num_shards() const { return static_cast<int64_t>(shards_.size()); }
  const io::TokenShard& shard(int64_t i) const;
  /// The shard files, in order.
  std::vector<std::string> paths() const;
  /// Tokens in all shards (including those no window uses).
  int64_t num_tokens() const { return total_tokens_; }

  struct Location {
    int64_t shard = 0;  ///< index into the shard list
    int64_t begin = 0;  ///< first token of the window (x[0]) in that shard
  };
  /// Where window `index` (0 <= index < size(), checked) lies.
  Location locate(int64_t index) const;

 private:
  std::vector<std::unique_ptr<io::TokenShard>> shards_;
  std::vector<int64_t> window_starts_;  // window_starts_[s] = first window of shard s; back() = total
  int64_t seq_len_ = 0;
  int64_t total_windows_ = 0;
  int64_t total_tokens_ = 0;
};

}  // namespace zae
