// IDX reader/writer and the FashionMNIST dataset: round trips of small generated
// files (raw and gzip), every corruption class as a clear error naming the file,
// and, where Debian's dataset-fashion-mnist is installed, the real files.
// Hostile gzip files are built here byte by byte (stored deflate blocks + CRC-32)
// so the test needs no zlib of its own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "io/fashion_mnist.h"
#include "io/idx.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;
using test::expect_throws_with;

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zae_idx_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const Bytes& bytes) const {
    std::ofstream out(path(name), std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path(name);
  }
  fs::path dir_;
};

uint32_t crc32(const Bytes& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_le32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// A valid gzip file holding `data` in stored (uncompressed) deflate blocks.
Bytes gzip_stored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, data.size() - pos);
    const bool last = pos + n == data.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<unsigned char>(n));
    out.push_back(static_cast<unsigned char>(n >> 8));
    out.push_back(static_cast<unsigned char>(~n));
    out.push_back(static_cast<unsigned char>(~n >> 8));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < data.size());
  put_le32(out, crc32(data));
  put_le32(out, static_cast<uint32_t>(data.size()));
  return out;
}

// Header bytes: 0 0 type ndims, then big-endian sizes.
Bytes idx_header(unsigned char type, const std::vector<uint32_t>& dims) {
  Bytes out = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(d >> s));
  return out;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---- round trips --------------------------------------------------------------

TEST_F(IdxTest, RoundTripEveryWritableDtypeRawAndGzip) {
  const Tensor u8 = tensor(std::vector<uint8_t>{0, 1, 127, 128, 200, 255}, {2, 3});
  const Tensor i32 = tensor(std::vector<int32_t>{-2147483647 - 1, -1, 0, 1, 65536, 2147483647}, {3, 2});
  const Tensor f32 = tensor(std::vector<float>{-1.5f, 0.0f, 3.25f, 1e-20f}, {4});
  const Tensor f64 = tensor(std::vector<double>{-1e300, 0.1, 2.0, -0.0, 5.5, 7.0, 8.0, 9.0}, {2, 2, 2});
  for (bool gz : {false, true}) {
    int k = 0;
    for (const Tensor& t : {u8, i32, f32, f64}) {
      std::string name = std::to_string(k++);
      name += gz ? ".idx.gz" : ".idx";
      const std::string p = path(name);
      write_idx(p, t, gz);
      const Tensor r = read_idx(p);
      EXPECT_EQ(r.dtype(), t.dtype());
      EXPECT_EQ(r.shape(), t.shape());
      EXPECT_EQ(r.to_vector<double>(), t.to_vector<double>()) << p;
    }
  }
  // A gzip file really is compressed: its first bytes are the gzip magic.
  write_idx(path("z.gz"), zeros({100, 100}, {.dtype = DType::uint8}), true);
  std::ifstream in(path("z.gz"), std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  EXPECT_EQ(magic[0], 0x1f);
  EXPECT_EQ(magic[1], 0x8b);
  EXPECT_LT(fs::file_size(path("z.gz")), 1000u);
}

TEST_F(IdxTest, ReadsEveryTypeCodeBigEndianFromHandWrittenFiles) {
  struct Case {
    unsigned char type;
    Bytes data;
    DType dtype;
    std::vector<double> values;
  };
  const std::vector<Case> cases = {
      {0x08, {0x00, 0x7f, 0xff}, DType::uint8, {0, 127, 255}},
      {0x09, {0x00, 0x7f, 0xff}, DType::int32, {0, 127, -1}},
      {0x0B, {0x01, 0x00, 0xff, 0xfe, 0x7f, 0xff}, DType::int32, {256, -2, 32767}},
      {0x0C, {0x00, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00}, DType::int32,
       {65536, -1, -2147483648.0}},
      {0x0D, {0x3f, 0x80, 0x00, 0x00, 0xc0, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, DType::float32, {1.0, -2.5, 0}},
      {0x0E, {0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xc0, 0x08, 0, 0, 0, 0, 0, 0, 0x40, 0x59, 0, 0, 0, 0, 0, 0},
       DType::float64, {1.0, -3.0, 100.0}},
  };
  for (const Case& c : cases) {
    const Bytes file = cat(idx_header(c.type, {3}), c.data);
    for (bool gz : {false, true}) {
      const std::string p = write("c.idx", gz ? gzip_stored(file) : file);
      const Tensor t = read_idx(p);
      EXPECT_EQ(t.dtype(), c.dtype) << "type code " << int(c.type);
      EXPECT_EQ(t.shape(), Shape({3}));
      EXPECT_EQ(t.to_vector<double>(), c.values) << "type code " << int(c.type) << (gz ? " gz" : " raw");
    }
  }
}

TEST_F(IdxTest, ZeroDimsIsAScalarAndAZeroSizeIsEmpty) {
  Tensor s = read_idx(write("s.idx", cat(idx_header(0x08, {}), {42})));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 42);
  Tensor e = read_idx(write("e.idx", idx_header(0x0D, {0, 5})));
  EXPECT_EQ(e.shape(), Shape({0, 5}));
  EXPECT_EQ(e.dtype(), DType::float32);
}

// ---- corruption classes ---------------------------------------------------------

TEST_F(IdxTest, EveryCorruptionIsAClearErrorNamingTheFile) {
  const Bytes good = cat(idx_header(0x08, {2, 3}), {1, 2, 3, 4, 5, 6});
  struct Case {
    std::string name;
    Bytes bytes;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"empty", {}, {"truncated header", "holds 0 bytes"}},
      {"short_magic", {0, 0, 8}, {"truncated header", "holds 3 bytes"}},
      {"short_dims", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0}, {"truncated header", "2 dimensions need 8 bytes", "holds 6"}},
      {"bad_magic", cat({0x1f, 0x00}, Bytes(good.begin() + 2, good.end())), {"bad magic 0x1F 0x00 0x08 0x02"}},
      {"unknown_type", cat(idx_header(0x0A, {2}), {1, 2}), {"unknown data type code 0x0A", "0x08 uint8"}},
      {"too_many_dims", Bytes{0, 0, 8, 9}, {"9 dimensions", "at most 8"}},
      {"huge_dims", idx_header(0x08, {65536, 65536}), {"[65536, 65536]", "2^31 elements"}},
      {"overflow_dims", idx_header(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}), {"2^31 elements"}},
      {"truncated_data", Bytes(good.begin(), good.end() - 2), {"shorter than its header says", "6 bytes", "holds 4"}},
      {"hostile_size", idx_header(0x0E, {1u << 28}), {"shorter than its header says", "2147483648 bytes", "holds 0"}},
      {"trailing", cat(good, {7, 8}), {"2 trailing bytes", "shape [2, 3] of uint8"}},
  };
  for (const Case& c : cases) {
    for (bool gz : {false, true}) {
      const std::string p = write(c.name + (gz ? ".gz" : ""), gz ? gzip_stored(c.bytes) : c.bytes);
      std::vector<std::string> expect = c.expect;
      expect.push_back(p);
      SCOPED_TRACE(c.name + (gz ? " (gzip)" : " (raw)"));
      expect_throws_with([&] { read_idx(p); }, expect);
    }
  }
}

TEST_F(IdxTest, DamagedGzipStreamsAreClearErrors) {
  const Bytes good = cat(idx_header(0x08, {2, 3}), {1, 2, 3, 4, 5, 6});
  const Bytes gz = gzip_stored(good);
  // Cut inside the data, and cut just before the trailer (CRC and size missing).
  expect_throws_with([&] { read_idx(write("cut.gz", Bytes(gz.begin(), gz.begin() + 20))); },
                     {"cut.gz", "truncated"});
  expect_throws_with([&] { read_idx(write("notrailer.gz", Bytes(gz.begin(), gz.end() - 8))); },
                     {"notrailer.gz", "gzip stream is truncated"});
  // A wrong CRC-32.
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 0xff;
  expect_throws_with([&] { read_idx(write("crc.gz", bad_crc)); }, {"crc.gz", "damaged", "incorrect data check"});
  // A corrupted deflate block header (invalid block type 3).
  Bytes bad_block = gz;
  bad_block[10] = 0x07;
  expect_throws_with([&] { read_idx(write("block.gz", bad_block)); }, {"block.gz", "damaged"});
}

TEST_F(IdxTest, MissingFilesAndDirectoriesAreClearErrors) {
  expect_throws_with([&] { read_idx(path("nope.idx")); }, {"nope.idx", "does not exist"});
  expect_throws_with([&] { read_idx(dir_.string()); }, {"is a directory"});
  expect_throws_with([&] { write_idx(path("x.idx"), zeros({2}, {.dtype = DType::int64}), false); },
                     {"write_idx", "int64", "no IDX type"});
}

// ---- FashionMNIST ------------------------------------------------------------------

TEST_F(IdxTest, FashionMNISTMissingRootGivesTheInstallHint) {
  expect_throws_with([&] { FashionMNIST ds(path("no_such_root")); },
                     {"apt-get install dataset-fashion-mnist", "no_such_root", "train-images-idx3-ubyte.gz"});
}

TEST_F(IdxTest, FashionMNISTOnSmallGeneratedFiles) {
  // 3 images: all pixels = 0, 51, 255; labels 9, 0, 3.
  Tensor images = zeros({3, 28, 28}, {.dtype = DType::uint8});
  images.select(0, 1).fill_(51);
  images.select(0, 2).fill_(255);
  write_idx(path("t10k-images-idx3-ubyte.gz"), images, true);
  write_idx(path("t10k-labels-idx1-ubyte"), tensor(std::vector<uint8_t>{9, 0, 3}), false);  // uncompressed accepted
  FashionMNIST ds(FashionMNISTOptions{.root = dir_.string(), .train = false});
  ASSERT_EQ(ds.size(), 3);
  Batch s = ds.get(1);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"image", "label"}));
  EXPECT_EQ(s["image"].shape(), Shape({1, 28, 28}));
  EXPECT_EQ(s["image"].dtype(), DType::float32);
  EXPECT_FLOAT_EQ(s["image"].to_vector<float>()[100], 51.0f / 255.0f);
  EXPECT_EQ(s["label"].dim(), 0);
  EXPECT_EQ(s["label"].dtype(), DType::int64);
  EXPECT_EQ(s["label"].item(), 0);
  EXPECT_EQ(ds.labels().to_vector<int64_t>(), (std::vector<int64_t>{9, 0, 3}));
  Tensor all = ds.images();
  EXPECT_EQ(all.shape(), Shape({3, 1, 28, 28}));
  EXPECT_FLOAT_EQ(all.to_vector<float>()[2 * 784 + 5], 1.0f);
  expect_throws_with([&] { ds.get(3); }, {"FashionMNIST", "index 3", "3 images"});

  FashionMNIST norm(FashionMNISTOptions{.root = dir_.string(), .train = false, .normalize = true, .mean = 0.5, .std = 0.25});
  EXPECT_FLOAT_EQ(norm.get(2)["image"].to_vector<float>()[0], (1.0f - 0.5f) / 0.25f);

  // Count mismatch and out-of-range labels.
  write_idx(path("t10k-labels-idx1-ubyte"), tensor(std::vector<uint8_t>{9, 0}), false);
  expect_throws_with([&] { FashionMNIST bad(dir_.string(), false); }, {"holds 3 images", "holds 2 labels"});
  write_idx(path("t10k-labels-idx1-ubyte"), tensor(std::vector<uint8_t>{9, 10, 0}), false);
  expect_throws_with([&] { FashionMNIST bad(dir_.string(), false); }, {"label 10 at index 1", "outside [0, 9]"});
  write_idx(path("t10k-labels-idx1-ubyte"), zeros({3}, {.dtype = DType::float32}), false);
  expect_throws_with([&] { FashionMNIST bad(dir_.string(), false); }, {"expected uint8 labels"});
}

bool fashion_mnist_installed() {
  const fs::path root = FashionMNIST::kDefaultRoot;
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    if (!fs::exists(root / f)) return false;
  return true;
}

TEST(FashionMNISTPackage, RealFilesLoadWithTheKnownContents) {
  if (!fashion_mnist_installed()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  // Reference numbers from NumPy over the same files.
  FashionMNIST train;
  ASSERT_EQ(train.size(), 60000);
  std::vector<int64_t> counts(10, 0);
  for (int64_t l : train.labels().to_vector<int64_t>()) {
    ASSERT_GE(l, 0);
    ASSERT_LE(l, 9);
    ++counts[static_cast<size_t>(l)];
  }
  EXPECT_EQ(counts, std::vector<int64_t>(10, 6000));
  EXPECT_EQ(train.labels().to_vector<int64_t>()[0], 9);  // an ankle boot
  const Tensor first = train.raw_images().select(0, 0).to(DType::int64);
  EXPECT_EQ(first.sum().item(), 76247);
  const std::vector<double> row14 = train.raw_images().select(0, 0).select(0, 14).to_vector<double>();
  EXPECT_EQ(row14[12], 237);
  EXPECT_EQ(row14[25], 255);
  Batch s = train.get(0);
  EXPECT_FLOAT_EQ(s["image"].to_vector<float>()[14 * 28 + 25], 1.0f);
  EXPECT_EQ(s["label"].item(), 9);

  FashionMNIST test(FashionMNIST::kDefaultRoot, false);
  ASSERT_EQ(test.size(), 10000);
  EXPECT_EQ(test.labels().slice(0, 0, 5).to_vector<int64_t>(), (std::vector<int64_t>{9, 2, 1, 1, 6}));
  EXPECT_EQ(test.raw_images().select(0, 0).to(DType::int64).sum().item(), 33456);
  EXPECT_EQ(test.raw_images().to(DType::int64).sum().item(), 573469082);
}

}  // namespace
}  // namespace zae
