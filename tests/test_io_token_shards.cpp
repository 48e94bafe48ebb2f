// llm.c token shards (io/token_shards.h): a written shard has exactly the documented bytes
// and reads back; every malformed header (empty, truncated, bad magic, version, n_tokens
// larger or smaller than the file, odd size, negative or huge n_tokens) fails with a
// message naming the path, the field, and the expected and found values; random shards
// are pinned, deterministic per seed and independent of the shard length; specs resolve
// to sorted files; TokenShardDataset's windows have the right x/y offsets, never cross a
// shard boundary, and batch, shuffle, shard across 2 ranks (DistributedSampler) and read
// from several threads correctly.
#include "io/token_shards.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/sampler.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

using test::expect_throws_with;
namespace fs = std::filesystem;

class TokenShardsTest : public test::TempDirTest {
 protected:
  void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  // A raw shard: header ints (magic, version, n_tokens) and `payload_bytes` bytes after it.
  std::string raw_shard(int32_t magic, int32_t version, int32_t n_tokens, size_t payload_bytes) {
    std::string b(1024 + payload_bytes, '\0');
    const int32_t h[3] = {magic, version, n_tokens};
    for (int k = 0; k < 3; ++k)
      for (int i = 0; i < 4; ++i) b[4 * k + i] = static_cast<char>(static_cast<uint32_t>(h[k]) >> (8 * i));
    for (size_t i = 0; i < payload_bytes; ++i) b[1024 + i] = static_cast<char>(i * 7);
    return b;
  }
  // Shard s of the "labelled" set: token i = s * 1000 + i, so a token names its shard and place.
  std::string labelled_shard(int64_t s, int64_t n) {
    std::vector<uint16_t> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<uint16_t>(s * 1000 + i);
    const std::string p = path("lab_train_" + std::to_string(100000 + s).substr(1) + ".bin");
    io::write_token_shard(p, t);
    return p;
  }
  // Shards of 25, 7, 3 and 16 tokens; with T = 4: 6 + 1 + 0 + 3 = 10 windows.
  std::vector<std::string> labelled_set() {
    return {labelled_shard(0, 25), labelled_shard(1, 7), labelled_shard(2, 3), labelled_shard(3, 16)};
  }
};

TEST_F(TokenShardsTest, RoundTripHasTheDocumentedBytes) {
  std::vector<uint16_t> tokens = {0, 1, 50256, 65535, 258, 7};
  for (int i = 0; i < 1000; ++i) tokens.push_back(static_cast<uint16_t>(i * 131));
  const std::string p = path("a.bin");
  io::write_token_shard(p, tokens);
  const std::string bytes = read(p);
  ASSERT_EQ(bytes.size(), 1024 + 2 * tokens.size());
  auto i32 = [&](size_t off) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[off + i])) << (8 * i);
    return static_cast<int32_t>(v);
  };
  EXPECT_EQ(i32(0), 20240520);
  EXPECT_EQ(i32(4), 1);
  EXPECT_EQ(i32(8), static_cast<int32_t>(tokens.size()));
  for (size_t k = 3; k < 256; ++k) ASSERT_EQ(i32(4 * k), 0) << "header int " << k;
  // Token 2 = 50256 = 0xC450, little-endian.
  EXPECT_EQ(static_cast<uint8_t>(bytes[1024 + 4]), 0x50);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1024 + 5]), 0xC4);

  EXPECT_EQ(io::read_token_shard(p), tokens);
  EXPECT_EQ(io::read_token_shard_header(p).n_tokens, static_cast<int64_t>(tokens.size()));
  io::TokenShard shard(p);
  EXPECT_EQ(shard.size(), static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(shard.at(3), 65535);
  EXPECT_EQ(shard.tokens(2, 3), (std::vector<uint16_t>{50256, 65535, 258}));
  std::vector<int64_t> wide(4);
  shard.copy_to(1, 4, wide.data());
  EXPECT_EQ(wide, (std::vector<int64_t>{1, 50256, 65535, 258}));
  expect_throws_with([&] { shard.at(static_cast<int64_t>(tokens.size())); }, {"a.bin", "out of range", "1006"});
  expect_throws_with([&] { shard.tokens(1000, 7); }, {"a.bin", "[1000, 1000 + 7)", "1006 tokens"});
  expect_throws_with([&] { shard.copy_to(-1, 2, wide.data()); }, {"out of range"});

  // Overwrite (crash-safe replace: no temporary left behind), and an empty shard.
  io::write_token_shard(p, std::vector<uint16_t>{9, 8});
  EXPECT_EQ(io::read_token_shard(p), (std::vector<uint16_t>{9, 8}));
  io::write_token_shard(path("empty.bin"), std::vector<uint16_t>{});
  EXPECT_EQ(read(path("empty.bin")).size(), 1024u);
  EXPECT_TRUE(io::read_token_shard(path("empty.bin")).empty());
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 2);
}

TEST_F(TokenShardsTest, MalformedHeadersFailWithPathFieldExpectedAndFound) {
  const std::string p = path("bad.bin");
  auto expect_bad = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    SCOPED_TRACE(parts.front());
    write_bytes(p, bytes);
    std::vector<std::string> with_path = parts;
    with_path.push_back(p);
    expect_throws_with([&] { io::read_token_shard_header(p); }, with_path);
    expect_throws_with([&] { io::TokenShard s(p); }, with_path);
    expect_throws_with([&] { TokenShardDataset ds({p}, 4); }, with_path);
  };
  expect_bad("", {"empty", "1024-byte header", "20240520"});
  expect_bad(std::string(100, 'x'), {"truncated header", "at least 1024", "100 bytes"});
  expect_bad(raw_shard(12345, 1, 0, 0), {"bad magic", "expected 20240520", "found 12345"});
  expect_bad(raw_shard(20240801, 1, 0, 0), {"bad magic", "found 20240801", "LLaMA-3"});
  expect_bad(raw_shard(20240520, 2, 0, 0), {"unsupported version", "expected 1", "found 2"});
  // n_tokens larger than the file: 1000 tokens claimed, 10 present.
  expect_bad(raw_shard(20240520, 1, 1000, 20),
             {"n_tokens", "says 1000 tokens", "expected file size 3024", "file is 1044 bytes", "truncated"});
  // n_tokens smaller than the file.
  expect_bad(raw_shard(20240520, 1, 5, 20),
             {"n_tokens", "says 5 tokens", "expected file size 1034", "file is 1044 bytes", "10 trailing bytes"});
  expect_bad(raw_shard(20240520, 1, 5, 11), {"odd size", "11 bytes follow the header", "expected file size 1034"});
  expect_bad(raw_shard(20240520, 1, -3, 0), {"n_tokens", "expected >= 0", "found -3"});
  // A hostile header: the largest n_tokens over a tiny file reads and allocates nothing.
  expect_bad(raw_shard(20240520, 1, INT32_MAX, 4), {"n_tokens", "says 2147483647 tokens", "file is 1028 bytes"});
  // Not a file at all.
  expect_throws_with([&] { io::TokenShard s(path("missing.bin")); }, {"missing.bin", "cannot open"});
  expect_throws_with([&] { io::TokenShard s(dir_.string()); }, {"directory"});
  // The parser alone, on a buffer: the origin names it.
  const std::string good = raw_shard(20240520, 1, 3, 6);
  const io::TokenShardHeader h =
      io::parse_token_shard_header(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "mem");
  EXPECT_EQ(h.n_tokens, 3);
  EXPECT_EQ(h.magic, 20240520);
  EXPECT_EQ(h.version, 1);
  expect_throws_with(
      [&] { io::parse_token_shard_header(reinterpret_cast<const uint8_t*>(good.data()), 1028, "mem buffer"); },
      {"'mem buffer'", "says 3 tokens", "truncated"});
}

TEST_F(TokenShardsTest, RandomShardsArePinnedDeterministicAndInRange) {
  // Pinned: changing the generator changes every benchmark's data.
  EXPECT_EQ(io::random_tokens(8, 50257, 0, 0),
            (std::vector<uint16_t>{20054, 44252, 36974, 30429, 48861, 18197, 34874, 1864}));
  // Shard s starts at counter block s << 40 (values from an independent Python Philox).
  EXPECT_EQ(io::random_tokens(4, 50257, 42, 1), (std::vector<uint16_t>{43576, 3078, 16194, 27046}));
  const std::vector<std::string> a = io::write_random_token_shards(path("a"), "random_train", 3, 5000, 50257, 42);
  const std::vector<std::string> b = io::write_random_token_shards(path("b"), "random_train", 3, 5000, 50257, 42);
  const std::vector<std::string> c = io::write_random_token_shards(path("c"), "random_train", 1, 5000, 50257, 43);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0], path("a/random_train_000000.bin"));
  EXPECT_EQ(a[2], path("a/random_train_000002.bin"));
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(read(a[s]), read(b[s])) << "shard " << s;  // same seed: the same bytes
    const std::vector<uint16_t> t = io::read_token_shard(a[s]);
    EXPECT_EQ(t, io::random_tokens(5000, 50257, 42, static_cast<int64_t>(s)));
    EXPECT_LT(*std::max_element(t.begin(), t.end()), 50257);
  }
  EXPECT_NE(io::read_token_shard(a[0]), io::read_token_shard(a[1]));  // shards differ
  EXPECT_NE(io::read_token_shard(a[0]), io::read_token_shard(c[0]));  // seeds differ
  // A longer shard extends a shorter one; more than one write chunk (65536) works.
  const std::vector<uint16_t> longer = io::random_tokens(70000, 50257, 42, 1);
  const std::vector<uint16_t> shard1 = io::read_token_shard(a[1]);
  EXPECT_TRUE(std::equal(shard1.begin(), shard1.end(), longer.begin()));
  const auto big = io::write_random_token_shards(path("big"), "r", 1, 70000, 50257, 42);
  EXPECT_EQ(io::read_token_shard(big[0]), io::random_tokens(70000, 50257, 42, 0));
  // Roughly uniform: a vocabulary of 8 over 80000 draws, each id within 5% of 10000.
  std::vector<int64_t> counts(8);
  for (uint16_t t : io::random_tokens(80000, 8, 7, 0)) ++counts[t];
  for (int64_t n : counts) EXPECT_NEAR(static_cast<double>(n), 10000.0, 500.0);
  const std::vector<uint16_t> full = io::random_tokens(200000, 65536, 1, 0);
  EXPECT_GT(*std::max_element(full.begin(), full.end()), 65000);
  expect_throws_with([] { io::random_tokens(4, 65537, 0); }, {"vocab_size", "65537"});
  expect_throws_with([] { io::random_tokens(4, 0, 0); }, {"vocab_size", "got 0"});
  expect_throws_with([&] { io::write_random_token_shards(path("d"), "x", 0, 10, 5, 0); }, {"n_shards", "got 0"});
  expect_throws_with([&] { io::write_random_token_shards(path("d"), "a/b", 1, 10, 5, 0); }, {"prefix", "a/b"});
}

TEST_F(TokenShardsTest, SpecsResolveToSortedFiles) {
  const std::vector<uint16_t> t = {1, 2, 3};
  for (const char* name : {"x_train_000002.bin", "x_train_000001.bin", "x_val_000000.bin", ".hidden.bin"})
    io::write_token_shard(path(name), t);
  write_bytes(path("notes.txt"), "hi");
  fs::create_directories(dir_ / "sub.bin");  // a directory matching *.bin is not a shard
  const std::vector<std::string> train = {path("x_train_000001.bin"), path("x_train_000002.bin")};
  EXPECT_EQ(io::list_token_shards(dir_.string(), "*_train_*.bin"), train);
  EXPECT_EQ(io::list_token_shards(dir_.string()),
            (std::vector<std::string>{path("x_train_000001.bin"), path("x_train_000002.bin"),
                                      path("x_val_000000.bin")}));
  EXPECT_EQ(io::resolve_token_shards(dir_.string()), io::list_token_shards(dir_.string()));
  EXPECT_EQ(io::resolve_token_shards(path("*_train_*.bin")), train);
  EXPECT_EQ(io::resolve_token_shards(path("x_val_000000.bin") + "," + path("*_train_*.bin")),
            (std::vector<std::string>{path("x_val_000000.bin"), train[0], train[1]}));
  expect_throws_with([&] { io::resolve_token_shards(path("nope.bin")); }, {"nope.bin", "does not exist"});
  expect_throws_with([&] { io::resolve_token_shards(path("*_test_*.bin")); }, {"no file matches", "*_test_*.bin"});
  expect_throws_with([&] { io::resolve_token_shards(path("sub.bin/")); }, {"sub.bin", "no *.bin files"});
  expect_throws_with([] { io::resolve_token_shards(""); }, {"empty"});
  expect_throws_with([&] { io::list_token_shards(path("nodir")); }, {"nodir", "cannot read"});
}

TEST_F(TokenShardsTest, WindowsHaveShiftedTargetsAndStayInsideShards) {
  const std::vector<std::string> paths = labelled_set();
  const TokenShardDataset ds(paths, 4);
  EXPECT_EQ(ds.size(), 10);  // (25-1)/4 + (7-1)/4 + (3-1)/4 + (16-1)/4
  EXPECT_EQ(ds.num_shards(), 4);
  EXPECT_EQ(ds.num_tokens(), 25 + 7 + 3 + 16);
  EXPECT_EQ(ds.paths(), paths);
  EXPECT_EQ(ds.seq_len(), 4);
  // Window k: (shard, first token).
  const std::vector<std::pair<int64_t, int64_t>> where = {{0, 0}, {0, 4}, {0, 8}, {0, 12}, {0, 16},
                                                          {0, 20}, {1, 0}, {3, 0}, {3, 4}, {3, 8}};
  for (int64_t k = 0; k < ds.size(); ++k) {
    const auto [s, begin] = where[static_cast<size_t>(k)];
    const TokenShardDataset::Location loc = ds.locate(k);
    EXPECT_EQ(loc.shard, s) << "window " << k;
    EXPECT_EQ(loc.begin, begin) << "window " << k;
    const Batch b = ds.get(k);
    ASSERT_EQ(b.names(), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(b["x"].dtype(), DType::int64);
    EXPECT_EQ(b["x"].shape(), (Shape{4}));
    EXPECT_EQ(b["y"].shape(), (Shape{4}));
    std::vector<int64_t> x(4), y(4);
    for (int64_t j = 0; j < 4; ++j) {
      x[static_cast<size_t>(j)] = s * 1000 + begin + j;
      y[static_cast<size_t>(j)] = s * 1000 + begin + j + 1;
    }
    EXPECT_EQ(b["x"].to_vector<int64_t>(), x) << "window " << k;
    EXPECT_EQ(b["y"].to_vector<int64_t>(), y) << "window " << k;
    EXPECT_LT(y.back() - s * 1000, ds.shard(s).size()) << "window " << k << " crosses the end of its shard";
  }
  expect_throws_with([&] { ds.get(10); }, {"index 10", "10 windows"});
  expect_throws_with([&] { ds.get(-1); }, {"index -1"});
  expect_throws_with([&] { TokenShardDataset bad(paths, 0); }, {"seq_len", "got 0"});
  expect_throws_with([&] { TokenShardDataset bad(std::vector<std::string>{}, 4); }, {"no shard files"});
  // T = 30: no shard holds 31 tokens.
  expect_throws_with([&] { TokenShardDataset bad(paths, 30); }, {"seq_len + 1 = 31", "lab_train_00000.bin': 25"});
  // T + 1 tokens exactly is one window; T = 24 over 25 tokens uses them all.
  EXPECT_EQ(TokenShardDataset({paths[0]}, 24).size(), 1);
  EXPECT_EQ(TokenShardDataset({paths[0]}, 24).get(0)["y"].to_vector<int64_t>().back(), 24);
  // From a spec (the directory).
  EXPECT_EQ(TokenShardDataset(io::resolve_token_shards(path("lab_*.bin")), 4).size(), 10);
}

// All windows of ds as {x..., y...}, read on this thread.
std::vector<std::vector<int64_t>> all_windows(const TokenShardDataset& ds) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t k = 0; k < ds.size(); ++k) {
    const Batch b = ds.get(k);
    std::vector<int64_t> v = b["x"].to_vector<int64_t>();
    const std::vector<int64_t> y = b["y"].to_vector<int64_t>();
    v.insert(v.end(), y.begin(), y.end());
    out.push_back(std::move(v));
  }
  return out;
}

TEST_F(TokenShardsTest, DataLoaderStacksWindowsInShuffledOrder) {
  auto ds = std::make_shared<TokenShardDataset>(labelled_set(), 4);
  const auto expected = all_windows(*ds);
  for (int workers : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 3, .shuffle = true, .seed = 7, .num_workers = workers});
    EXPECT_EQ(loader.size(), 4);
    const std::vector<int64_t> order = loader.order_for_epoch(0);
    EXPECT_EQ(order, shuffled_order(10, 7, 0));
    int64_t pos = 0, batches = 0;
    for (const Batch& b : loader) {
      const int64_t rows = std::min<int64_t>(3, 10 - pos);
      ASSERT_EQ(b["x"].shape(), (Shape{rows, 4}));
      ASSERT_EQ(b["y"].shape(), (Shape{rows, 4}));
      const std::vector<int64_t> x = b["x"].to_vector<int64_t>(), y = b["y"].to_vector<int64_t>();
      for (int64_t r = 0; r < rows; ++r, ++pos) {
        const auto& w = expected[static_cast<size_t>(order[static_cast<size_t>(pos)])];
        EXPECT_TRUE(std::equal(w.begin(), w.begin() + 4, x.begin() + 4 * r)) << "batch " << batches << " row " << r;
        EXPECT_TRUE(std::equal(w.begin() + 4, w.end(), y.begin() + 4 * r)) << "batch " << batches << " row " << r;
      }
      ++batches;
    }
    EXPECT_EQ(pos, 10);
    EXPECT_EQ(batches, 4);
    EXPECT_NE(loader.order_for_epoch(1), order);  // a new order every epoch
  }
  // Benchmark-sized: random shards, B = 4, T = 256 with drop_last.
  const auto paths = io::write_random_token_shards(path("rnd"), "random_train", 2, 3000, 50257, 1);
  auto big = std::make_shared<TokenShardDataset>(paths, 256);
  EXPECT_EQ(big->size(), 2 * (2999 / 256));
  DataLoader loader(big, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 3});
  int64_t n = 0;
  for (const Batch& b : loader) {
    EXPECT_EQ(b["x"].shape(), (Shape{4, 256}));
    ++n;
  }
  EXPECT_EQ(n, 22 / 4);
}

TEST_F(TokenShardsTest, DistributedSamplerSplitsWindowsAcrossTwoRanks) {
  auto ds = std::make_shared<TokenShardDataset>(labelled_set(), 4);
  ASSERT_EQ(ds->size() % 2, 0);
  for (int64_t epoch : {0, 1}) {
    std::vector<std::set<int64_t>> seen(2);  // x[0] of every window each rank received
    for (int rank = 0; rank < 2; ++rank) {
      auto sampler = std::make_shared<const DistributedSampler>(rank, 2, DistributedSampler::Options{.seed = 5});
      DataLoader loader(ds, {.batch_size = 2, .sampler = sampler});
      loader.set_epoch(epoch);
      int64_t samples = 0;
      for (const Batch& b : loader) {
        const std::vector<int64_t> x = b["x"].to_vector<int64_t>();
        for (size_t r = 0; r < x.size(); r += 4) {
          EXPECT_TRUE(seen[static_cast<size_t>(rank)].insert(x[r]).second) << "rank " << rank << " saw a window twice";
          ++samples;
        }
      }
      EXPECT_EQ(samples, 5) << "rank " << rank;
    }
    std::set<int64_t> both = seen[0];
    for (int64_t v : seen[1]) EXPECT_TRUE(both.insert(v).second) << "window starting at " << v << " on both ranks";
    std::set<int64_t> all;
    for (int64_t k = 0; k < ds->size(); ++k) all.insert(ds->get(k)["x"].to_vector<int64_t>()[0]);
    EXPECT_EQ(both, all) << "epoch " << epoch;
  }
}

TEST_F(TokenShardsTest, GetIsThreadSafe) {
  const auto paths = io::write_random_token_shards(path("rnd"), "random_train", 3, 4000, 50257, 9);
  const TokenShardDataset ds(paths, 64);
  const auto expected = all_windows(ds);
  std::atomic<int64_t> mismatches{0}, reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (int64_t i = 0; i < ds.size(); ++i) {
          const int64_t k = (i * 7 + t + round) % ds.size();
          const Batch b = ds.get(k);
          std::vector<int64_t> v = b["x"].to_vector<int64_t>();
          const std::vector<int64_t> y = b["y"].to_vector<int64_t>();
          v.insert(v.end(), y.begin(), y.end());
          if (v != expected[static_cast<size_t>(k)]) ++mismatches;
          ++reads;
        }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(reads.load(), 8 * 20 * ds.size());
}

}  // namespace
}  // namespace zae
