// llm.c token shards: header validation, the memory-mapped reader, the crash-safe
// writer, deterministic random shards, shard lists from a spec, and TokenShardDataset.
// Byte order is explicit (little-endian on disk whatever the host); the header is
// validated against the file size before any token is touched.
#include "io/token_shards.h"

#include <fnmatch.h>
#include <glob.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "kernels/philox.h"

namespace zae::io {

namespace {

constexpr int32_t kLlamaShardMagic = 20240801;  // llm.c's uint32-token (LLaMA 3) shards
constexpr int kShardIndexBits = 40;             // random shards: block offset = shard << 40
constexpr int64_t kMaxRandomShards = int64_t{1} << 24;
constexpr int64_t kWriteChunkTokens = int64_t{1} << 16;

int32_t load_i32_le(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24));
}

void store_i32_le(uint8_t* p, int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(u >> (8 * i));
}

uint16_t load_u16_le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Writes tokens as little-endian uint16 to f.
void write_tokens_le(std::FILE* f, const uint16_t* tokens, size_t n, const std::string& path) {
  if constexpr (std::endian::native == std::endian::little) {
    write_all(f, tokens, n * sizeof(uint16_t), path);
  } else {
    std::vector<uint8_t> buf;
    for (size_t done = 0; done < n;) {
      const size_t m = std::min(n - done, static_cast<size_t>(kWriteChunkTokens));
      buf.resize(2 * m);
      for (size_t i = 0; i < m; ++i) {
        buf[2 * i] = static_cast<uint8_t>(tokens[done + i]);
        buf[2 * i + 1] = static_cast<uint8_t>(tokens[done + i] >> 8);
      }
      write_all(f, buf.data(), buf.size(), path);
      done += m;
    }
  }
}

void write_header(std::FILE* f, int64_t n_tokens, const std::string& path) {
  uint8_t header[kTokenShardHeaderBytes] = {};
  store_i32_le(header, kTokenShardMagic);
  store_i32_le(header + 4, kTokenShardVersion);
  store_i32_le(header + 8, static_cast<int32_t>(n_tokens));
  write_all(f, header, sizeof(header), path);
}

// Tokens [begin, begin + count) of random shard `shard`, into out.
void fill_random_tokens(uint16_t* out, int64_t begin, int64_t count, int64_t vocab_size, uint64_t seed,
                        int64_t shard) {
  const uint64_t base = static_cast<uint64_t>(shard) << kShardIndexBits;
  const auto vocab = static_cast<uint64_t>(vocab_size);
  int64_t i = begin;
  const int64_t end = begin + count;
  while (i < end) {
    const philox::U32x4 w = philox::block(seed, base + static_cast<uint64_t>(i) / 4);
    for (int64_t j = i % 4; j < 4 && i < end; ++j, ++i)
      out[i - begin] = static_cast<uint16_t>((static_cast<uint64_t>(w.v[j]) * vocab) >> 32);
  }
}

void check_random_args(int64_t n, int64_t vocab_size, int64_t shard_index, const char* op) {
  ZAE_CHECK(n >= 0 && n <= kTokenShardMaxTokens, op, ": the number of tokens must be in [0, ", kTokenShardMaxTokens,
            "], got ", n);
  ZAE_CHECK(vocab_size >= 1 && vocab_size <= 65536, op, ": vocab_size must be in [1, 65536] (uint16 token ids), got ",
            vocab_size);
  ZAE_CHECK(shard_index >= 0 && shard_index < kMaxRandomShards, op, ": shard index must be in [0, ", kMaxRandomShards,
            "), got ", shard_index);
}

bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::error_code ec;
      if (std::filesystem::is_regular_file(g.gl_pathv[i], ec)) out.emplace_back(g.gl_pathv[i]);
    }
  }
  ::globfree(&g);
  ZAE_CHECK(rc == 0 || rc == GLOB_NOMATCH, "token shards: cannot expand the pattern '", pattern, "' (",
            rc == GLOB_ABORTED ? "a directory could not be read" : "out of memory", ")");
  std::sort(out.begin(), out.end());  // byte order, whatever the locale
  return out;
}

}  // namespace

TokenShardHeader parse_token_shard_header(const uint8_t* data, size_t size, const std::string& origin) {
  ZAE_CHECK(size != 0, "token shard '", origin, "': the file is empty (expected a ", kTokenShardHeaderBytes,
            "-byte header of 256 int32 [", kTokenShardMagic, ", ", kTokenShardVersion,
            ", n_tokens, 0, ...] followed by n_tokens uint16)");
  ZAE_CHECK(size >= kTokenShardHeaderBytes, "token shard '", origin, "': truncated header: expected at least ",
            kTokenShardHeaderBytes, " bytes, found a file of ", size, " bytes");
  TokenShardHeader h;
  h.magic = load_i32_le(data);
  if (h.magic != kTokenShardMagic) {
    ZAE_FAIL("token shard '", origin, "': bad magic: expected ", kTokenShardMagic, ", found ", h.magic,
             h.magic == kLlamaShardMagic ? " (llm.c's uint32-token LLaMA-3 shard format, which is not supported)"
                                         : " (not an llm.c GPT-2 token shard)");
  }
  h.version = load_i32_le(data + 4);
  ZAE_CHECK(h.version == kTokenShardVersion, "token shard '", origin, "': unsupported version: expected ",
            kTokenShardVersion, " (uint16 tokens), found ", h.version);
  h.n_tokens = load_i32_le(data + 8);
  ZAE_CHECK(h.n_tokens >= 0, "token shard '", origin, "': n_tokens: expected >= 0, found ", h.n_tokens);
  const uint64_t payload = size - kTokenShardHeaderBytes;
  ZAE_CHECK(payload % 2 == 0, "token shard '", origin, "': odd size: ", payload,
            " bytes follow the header, not a whole number of uint16 tokens (file size ", size,
            ", header n_tokens ", h.n_tokens, ", expected file size ",
            kTokenShardHeaderBytes + 2 * static_cast<uint64_t>(h.n_tokens), ")");
  const uint64_t expected = 2 * static_cast<uint64_t>(h.n_tokens);
  ZAE_CHECK(expected <= payload, "token shard '", origin, "': n_tokens: the header says ", h.n_tokens,
            " tokens (expected file size ", kTokenShardHeaderBytes + expected, " bytes) but the file is ", size,
            " bytes (", payload / 2, " tokens): truncated file or corrupt header");
  ZAE_CHECK(expected == payload, "token shard '", origin, "': n_tokens: the header says ", h.n_tokens,
            " tokens (expected file size ", kTokenShardHeaderBytes + expected, " bytes) but the file is ", size,
            " bytes (", payload / 2, " tokens): ", payload - expected, " trailing bytes");
  return h;
}

TokenShardHeader read_token_shard_header(const std::string& path) {
  MappedFile file(path, "read_token_shard_header");
  return parse_token_shard_header(file.data(), file.size(), path);
}

void write_token_shard(const std::string& path, std::span<const uint16_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  ZAE_CHECK(n <= kTokenShardMaxTokens, "write_token_shard '", path, "': ", n,
            " tokens do not fit one shard (n_tokens is an int32: at most ", kTokenShardMaxTokens, ")");
  write_file_atomic(path, [&](std::FILE* f) {
    write_header(f, n, path);
    write_tokens_le(f, tokens.data(), tokens.size(), path);
  });
}

std::vector<uint16_t> read_token_shard(const std::string& path) {
  TokenShard shard(path);
  return shard.tokens(0, shard.size());
}

// ---- TokenShard ----

TokenShard::TokenShard(const std::string& path) : path_(path) {
  file_ = std::make_unique<MappedFile>(path, "TokenShard");
  const TokenShardHeader h = parse_token_shard_header(file_->data(), file_->size(), path);
  n_tokens_ = h.n_tokens;
  token_bytes_ = file_->data() + kTokenShardHeaderBytes;
}

TokenShard::~TokenShard() = default;

void TokenShard::check_range(int64_t begin, int64_t count) const {
  ZAE_CHECK(begin >= 0 && count >= 0 && begin <= n_tokens_ && count <= n_tokens_ - begin, "token shard '", path_,
            "': tokens [", begin, ", ", begin, " + ", count, ") are out of range for a shard of ", n_tokens_,
            " tokens");
}

uint16_t TokenShard::at(int64_t index) const {
  ZAE_CHECK(index >= 0 && index < n_tokens_, "token shard '", path_, "': token index ", index,
            " is out of range for a shard of ", n_tokens_, " tokens");
  return load_u16_le(token_bytes_ + 2 * index);
}

void TokenShard::copy_to(int64_t begin, int64_t count, int64_t* dst) const {
  check_range(begin, count);
  const uint8_t* p = token_bytes_ + 2 * begin;
  for (int64_t i = 0; i < count; ++i) dst[i] = load_u16_le(p + 2 * i);
}

std::vector<uint16_t> TokenShard::tokens(int64_t begin, int64_t count) const {
  check_range(begin, count);
  std::vector<uint16_t> out(static_cast<size_t>(count));
  const uint8_t* p = token_bytes_ + 2 * begin;
  if constexpr (std::endian::native == std::endian::little) {
    if (count > 0) std::memcpy(out.data(), p, static_cast<size_t>(2 * count));
  } else {
    for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = load_u16_le(p + 2 * i);
  }
  return out;
}

// ---- random shards ----

std::vector<uint16_t> random_tokens(int64_t n, int64_t vocab_size, uint64_t seed, int64_t shard_index) {
  check_random_args(n, vocab_size, shard_index, "random_tokens");
  std::vector<uint16_t> out(static_cast<size_t>(n));
  fill_random_tokens(out.data(), 0, n, vocab_size, seed, shard_index);
  return out;
}

std::vector<std::string> write_random_token_shards(const std::string& dir, const std::string& prefix,
                                                   int64_t n_shards, int64_t tokens_per_shard,
                                                   int64_t vocab_size, uint64_t seed) {
  ZAE_CHECK(n_shards >= 1 && n_shards <= kMaxRandomShards, "write_random_token_shards: n_shards must be in [1, ",
            kMaxRandomShards, "], got ", n_shards);
  ZAE_CHECK(!prefix.empty() && prefix.find('/') == std::string::npos,
            "write_random_token_shards: prefix must be a non-empty file name prefix without '/', got '", prefix, "'");
  check_random_args(tokens_per_shard, vocab_size, n_shards - 1, "write_random_token_shards");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ZAE_CHECK(!ec, "write_random_token_shards: cannot create the directory '", dir, "': ", ec.message());
  std::vector<std::string> paths;
  std::vector<uint16_t> chunk(static_cast<size_t>(std::min(tokens_per_shard, kWriteChunkTokens)));
  for (int64_t s = 0; s < n_shards; ++s) {
    char name[32];
    std::snprintf(name, sizeof(name), "_%06lld.bin", static_cast<long long>(s));
    const std::string path = (std::filesystem::path(dir) / (prefix + name)).string();
    write_file_atomic(path, [&](std::FILE* f) {
      write_header(f, tokens_per_shard, path);
      for (int64_t done = 0; done < tokens_per_shard;) {
        const int64_t m = std::min(tokens_per_shard - done, kWriteChunkTokens);
        fill_random_tokens(chunk.data(), done, m, vocab_size, seed, s);
        write_tokens_le(f, chunk.data(), static_cast<size_t>(m), path);
        done += m;
      }
    });
    paths.push_back(path);
  }
  return paths;
}

// ---- shard lists ----

std::vector<std::string> list_token_shards(const std::string& dir, const std::string& pattern) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  ZAE_CHECK(!ec, "list_token_shards: cannot read the directory '", dir, "': ", ec.message());
  std::vector<std::string> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0) out.push_back(it->path().string());
  }
  ZAE_CHECK(!ec, "list_token_shards: error while reading the directory '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> resolve_token_shards(const std::string& spec) {
  ZAE_CHECK(!spec.empty(), "token shards: the data spec is empty (expected a directory, a glob pattern such as "
            "'data/*_train_*.bin', a file, or a comma-separated list of them)");
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    std::error_code ec;
    std::vector<std::string> found;
    if (std::filesystem::is_directory(item, ec)) {
      found = list_token_shards(item, "*.bin");
      ZAE_CHECK(!found.empty(), "token shards: the directory '", item, "' holds no *.bin files");
    } else if (is_glob(item) && !std::filesystem::exists(item, ec)) {
      found = glob_files(item);
      ZAE_CHECK(!found.empty(), "token shards: no file matches the pattern '", item, "'");
    } else {
      ZAE_CHECK(std::filesystem::is_regular_file(item, ec), "token shards: '", item, "' ",
                std::filesystem::exists(item, ec) ? "is not a regular file" : "does not exist");
      found.push_back(item);
    }
    out.insert(out.end(), found.begin(), found.end());
  }
  ZAE_CHECK(!out.empty(), "token shards: the data spec '", spec, "' names no file");
  return out;
}

}  // namespace zae::io

namespace zae {

TokenShardDataset::TokenShardDataset(std::vector<std::string> paths, int64_t seq_len) : seq_len_(seq_len) {
  ZAE_CHECK(seq_len >= 1, "TokenShardDataset: seq_len (T) must be >= 1, got ", seq_len);
  ZAE_CHECK(!paths.empty(), "TokenShardDataset: no shard files given");
  shards_.reserve(paths.size());
  window_starts_.reserve(paths.size() + 1);
  window_starts_.push_back(0);
  for (const std::string& p : paths) {
    shards_.push_back(std::make_unique<io::TokenShard>(p));
    const int64_t n = shards_.back()->size();
    const int64_t windows = n >= 1 ? (n - 1) / seq_len : 0;  // window k: tokens [kT, kT + T + 1)
    total_tokens_ += n;
    total_windows_ += windows;
    window_starts_.push_back(total_windows_);
  }
  if (total_windows_ == 0) {
    std::string sizes;
    for (size_t i = 0; i < shards_.size() && i < 8; ++i)
      sizes += (i ? ", '" : "'") + shards_[i]->path() + "': " + std::to_string(shards_[i]->size());
    if (shards_.size() > 8) sizes += ", ... (" + std::to_string(shards_.size()) + " shards)";
    ZAE_FAIL("TokenShardDataset: no shard holds seq_len + 1 = ", seq_len + 1,
             " tokens, so there is no window to sample (tokens per shard: ", sizes, ")");
  }
}

TokenShardDataset::~TokenShardDataset() = default;

const io::TokenShard& TokenShardDataset::shard(int64_t i) const {
  ZAE_CHECK(i >= 0 && i < num_shards(), "TokenShardDataset: shard index ", i, " is out of range for ", num_shards(),
            " shards");
  return *shards_[static_cast<size_t>(i)];
}

std::vector<std::string> TokenShardDataset::paths() const {
  std::vector<std::string> out;
  out.reserve(shards_.size());
  for (const auto& s : shards_) out.push_back(s->path());
  return out;
}

TokenShardDataset::Location TokenShardDataset::locate(int64_t index) const {
  ZAE_CHECK(index >= 0 && index < total_windows_, "TokenShardDataset: index ", index,
            " is out of range for a dataset of ", total_windows_, " windows");
  // The last shard whose first window is <= index (shards without windows share their
  // successor's start and are skipped by upper_bound).
  const auto it = std::upper_bound(window_starts_.begin(), window_starts_.end(), index);
  const auto s = static_cast<int64_t>(it - window_starts_.begin()) - 1;
  return {s, (index - window_starts_[static_cast<size_t>(s)]) * seq_len_};
}

Batch TokenShardDataset::get(int64_t index) const {
  const Location loc = locate(index);
  const io::TokenShard& sh = *shards_[static_cast<size_t>(loc.shard)];
  Tensor x = Tensor::empty({seq_len_}, {.dtype = DType::int64});  // (T)
  Tensor y = Tensor::empty({seq_len_}, {.dtype = DType::int64});  // (T)
  sh.copy_to(loc.begin, seq_len_, x.data<int64_t>());
  sh.copy_to(loc.begin + 1, seq_len_, y.data<int64_t>());
  return Batch{{"x", std::move(x)}, {"y", std::move(y)}};
}

}  // namespace zae
