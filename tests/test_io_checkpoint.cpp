// The .ckpt format (io/checkpoint.h) on its own: round trips of every engine dtype, the
// state JSON and user metadata; the file is a plain safetensors file with the documented
// metadata keys; the stored checksum equals a CRC-32 computed here, independently of the
// library (a bitwise ISO-HDLC CRC, checked against the standard check value); every
// single-byte change and every truncation is a zae::Error (never a crash, never a silent
// load); crafted files (a newer version, a plain safetensors file, a missing or malformed
// state) give their own errors; serialization is deterministic.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/error.h"
#include "engine/zae.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;
namespace json = io::json;
using test::expect_throws_with;

// ---- an implementation of the checksum that shares nothing with the library --------

// CRC-32/ISO-HDLC (zlib's crc32): reflected polynomial 0xEDB88320, init and xorout ~0.
uint32_t reference_crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

constexpr std::string_view kChecksumMember = "\"zae.ckpt.checksum\":\"crc32:";

// Offset of the 8 checksum digits in a file image (found by text search in the header).
size_t digits_offset(const std::string& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const std::string header = file.substr(8, n);
  const size_t at = header.find(kChecksumMember);
  EXPECT_NE(at, std::string::npos) << "no checksum member in the header";
  EXPECT_EQ(header.find(kChecksumMember, at + 1), std::string::npos) << "two checksum members";
  return 8 + at + kChecksumMember.size();
}

// The checksum the format defines: CRC-32 of the file with the 8 digits read as "00000000".
uint32_t expected_checksum(std::string file) {
  file.replace(digits_offset(file), 8, "00000000");
  return reference_crc32(file);
}

// Rewrites the stored checksum so that it matches the (modified) contents.
std::string seal(std::string file) {
  const uint32_t crc = expected_checksum(file);
  file.replace(digits_offset(file), 8, hex8(crc));
  return file;
}

// Replaces the one occurrence of `from` by `to` (same length: the header size stays).
std::string rewrite(std::string file, const std::string& from, const std::string& to) {
  EXPECT_EQ(from.size(), to.size());
  const size_t at = file.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(file.find(from, at + 1), std::string::npos) << from;
  if (at != std::string::npos) file.replace(at, from.size(), to);
  return file;
}

std::string bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

::testing::AssertionResult same_tensor(const Tensor& got, const Tensor& want) {
  if (!got.defined()) return ::testing::AssertionFailure() << "tensor missing";
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "dtype " << got.dtype() << " != " << want.dtype();
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << " != " << shape_str(want.shape());
  if (bytes_of(got) != bytes_of(want)) return ::testing::AssertionFailure() << "bytes differ";
  return ::testing::AssertionSuccess();
}

// A checkpoint with one tensor of every engine dtype (scalars, empty and strided ones
// too), a nested state and user metadata with awkward keys and values.
io::Checkpoint sample_checkpoint(int64_t scale = 1) {
  io::Checkpoint ck;
  const DType dtypes[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                          DType::int32,   DType::int64,   DType::uint8,    DType::bool_};
  uint64_t seed = 1;
  for (DType d : dtypes)
    ck.tensors.emplace_back("model." + std::string(dtype_name(d)), test::random_tensor({3, 2 * scale}, d, seed++));
  ck.tensors.emplace_back("optim.0.scalar", test::random_tensor({}, DType::float64, 20));
  ck.tensors.emplace_back("optim.0.empty", Tensor::empty({0, 4}, {.dtype = DType::float32}));
  ck.tensors.emplace_back("best.transposed", test::random_tensor({4, 5}, DType::float32, 21).t());
  ck.state = json::parse(
      R"({"progress":{"epoch":3,"step":41},"mode":"train","best":{"loss":0.125,"epoch":2},)"
      R"("loop":{"in_epoch":true,"loss_history_train":[1.5,0.75,-0.0,1e-300,"nan","inf"]},)"
      R"("text":"quote \" backslash \\ newline \n tab \t unicode \u00e9\u4e2d \ud83d\ude00","none":null,)"
      R"("empty":{},"list":[],"big":18446744073709551615,"neg":-9223372036854775808})",
      "sample state");
  ck.user_metadata = {{"run", "exp-7"},
                      {"format", "not the format tag"},
                      {"zae.ckpt.version", "user value with a reserved-looking key"},
                      {"dotted.key.name", "quote \" and newline \n and \xc3\xa9"},
                      {"empty", ""},
                      {"trap", "\"zae.ckpt.checksum\":\"crc32:12345678\""}};
  return ck;
}

class CheckpointFormatTest : public test::TempDirTest {
 protected:
  // Unlinks first: ext4 flushes a file truncated and rewritten in place on close
  // (auto_da_alloc), which would make the exhaustive loops below wait on the disk.
  static void write(const std::string& p, const std::string& bytes) {
    std::error_code ec;
    fs::remove(p, ec);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << p;
  }
};

// ---- round trips --------------------------------------------------------------------

TEST_F(CheckpointFormatTest, RoundTripsEveryDtypeStateAndUserMetadata) {
  const io::Checkpoint ck = sample_checkpoint();
  const std::string p = path("a.ckpt");
  io::save_checkpoint(p, ck);
  const io::Checkpoint back = io::load_checkpoint(p);
  ASSERT_EQ(back.tensors.size(), ck.tensors.size());
  for (const auto& [name, t] : ck.tensors) EXPECT_TRUE(same_tensor(back.find(name), t)) << name;
  EXPECT_FALSE(back.find("absent").defined());
  EXPECT_EQ(json::dump(back.state), json::dump(ck.state));
  EXPECT_EQ(back.user_metadata, ck.user_metadata);

  // The in-memory reader gives the same, and so does a second generation (load, save, load).
  const std::string bytes = read(p);
  const io::Checkpoint mem =
      io::parse_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "memory");
  EXPECT_EQ(json::dump(mem.state), json::dump(ck.state));
  io::save_checkpoint(path("b.ckpt"), back);
  EXPECT_EQ(read(path("b.ckpt")), bytes) << "load + save must reproduce the file byte for byte";
}

TEST_F(CheckpointFormatTest, LoadOptionsConvertFloatingTensorsOnly) {
  io::save_checkpoint(path("a.ckpt"), sample_checkpoint());
  io::SafetensorsLoadOptions to_double;
  to_double.dtype = DType::float64;
  const io::Checkpoint back = io::load_checkpoint(path("a.ckpt"), to_double);
  EXPECT_EQ(back.find("model.float16").dtype(), DType::float64);
  EXPECT_EQ(back.find("model.bfloat16").dtype(), DType::float64);
  EXPECT_EQ(back.find("model.int32").dtype(), DType::int32);
  EXPECT_EQ(back.find("model.bool").dtype(), DType::bool_);
}

TEST_F(CheckpointFormatTest, EmptyCheckpointRoundTrips) {
  io::Checkpoint ck;  // no tensors, empty state object, no user metadata
  io::save_checkpoint(path("e.ckpt"), ck);
  const io::Checkpoint back = io::load_checkpoint(path("e.ckpt"));
  EXPECT_TRUE(back.tensors.empty());
  EXPECT_EQ(json::dump(back.state), "{}");
  EXPECT_TRUE(back.user_metadata.empty());
}

TEST_F(CheckpointFormatTest, StateMustBeAnObject) {
  io::Checkpoint ck;
  ck.state = json::Value::make_array();
  expect_throws_with([&] { io::serialize_checkpoint(ck); }, {"save_checkpoint", "must be a JSON object", "array"});
  expect_throws_with([&] { io::save_checkpoint(path("x.ckpt"), ck); }, {"must be a JSON object"});
  EXPECT_FALSE(fs::exists(path("x.ckpt")));
}

// ---- the file is a safetensors file with the documented metadata ---------------------

TEST_F(CheckpointFormatTest, IsAPlainSafetensorsFileWithDocumentedMetadata) {
  const io::Checkpoint ck = sample_checkpoint();
  const std::string p = path("a.ckpt");
  io::save_checkpoint(p, ck);

  const io::SafetensorsData st = io::load_safetensors(p);
  ASSERT_EQ(st.tensors.size(), ck.tensors.size());
  for (const auto& [name, t] : ck.tensors) {
    auto it = std::find_if(st.tensors.begin(), st.tensors.end(), [&](const auto& e) { return e.first == name; });
    ASSERT_NE(it, st.tensors.end()) << name;
    EXPECT_TRUE(same_tensor(it->second, t)) << name;
  }
  std::map<std::string, std::string> expected_keys;
  for (const auto& [k, v] : ck.user_metadata) expected_keys["user." + k] = v;
  const auto& md = st.metadata;
  EXPECT_EQ(md.at("format"), "zae-ckpt");
  EXPECT_EQ(md.at("zae.ckpt.version"), std::to_string(io::kCheckpointVersion));
  EXPECT_EQ(io::kCheckpointVersion, 1);
  EXPECT_EQ(json::dump(json::parse(md.at("zae.ckpt.state"), "state")), json::dump(ck.state));
  const std::string sum = md.at("zae.ckpt.checksum");
  ASSERT_EQ(sum.size(), 14u);
  EXPECT_EQ(sum.substr(0, 6), "crc32:");
  EXPECT_TRUE(std::all_of(sum.begin() + 6, sum.end(), [](char c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); }))
      << sum;
  for (const auto& [k, v] : expected_keys) EXPECT_EQ(md.at(k), v) << k;
  EXPECT_EQ(md.size(), expected_keys.size() + 4) << "only format, version, state, checksum and user.* keys";

  EXPECT_TRUE(io::is_checkpoint(io::read_safetensors_header(p)));
  io::save_safetensors(path("plain.safetensors"), ck.tensors, {{"format", "pt"}});
  EXPECT_FALSE(io::is_checkpoint(io::read_safetensors_header(path("plain.safetensors"))));
}

// ---- the checksum -------------------------------------------------------------------

TEST(CheckpointChecksum, ReferenceCrcMatchesTheStandardCheckValueAndTheLibrary) {
  // The CRC-32/ISO-HDLC check value (what zlib.crc32(b"123456789") gives).
  EXPECT_EQ(reference_crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(reference_crc32(""), 0u);
  EXPECT_EQ(io::crc32_update(0, "123456789", 9), 0xCBF43926u);
  // crc32_update continues a running CRC: any split gives the whole.
  std::mt19937 rng(5);
  std::string data(4099, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = reference_crc32(data);
  EXPECT_EQ(io::crc32_update(0, data.data(), data.size()), whole);
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{2048}, data.size()}) {
    const uint32_t a = io::crc32_update(0, data.data(), split);
    EXPECT_EQ(io::crc32_update(a, data.data() + split, data.size() - split), whole) << split;
  }
}

TEST_F(CheckpointFormatTest, StoredChecksumIsTheCrcOfTheFileWithZeroedDigits) {
  const std::string p = path("a.ckpt");
  io::save_checkpoint(p, sample_checkpoint());
  const std::string file = read(p);
  const size_t at = digits_offset(file);
  const uint32_t crc = expected_checksum(file);
  EXPECT_EQ(file.substr(at, 8), hex8(crc));
  const io::CheckpointInfo info = io::verify_checkpoint(p);
  EXPECT_EQ(info.checksum, crc);
  EXPECT_EQ(info.version, 1);
  EXPECT_EQ(info.header.file_size, file.size());
  EXPECT_EQ(info.header.entries.size(), sample_checkpoint().tensors.size());
  EXPECT_EQ(json::dump(info.state), json::dump(sample_checkpoint().state));
  EXPECT_EQ(info.user_metadata, sample_checkpoint().user_metadata);
  EXPECT_EQ(info.header.metadata.at("zae.ckpt.checksum"), "crc32:" + hex8(crc));
}

// Every single-byte change of the file is refused with a zae::Error by every reader.
TEST_F(CheckpointFormatTest, EverySingleByteChangeIsRefused) {
  const std::string good = io::serialize_checkpoint(sample_checkpoint());
  const std::string p = path("flip.ckpt");
  ASSERT_LT(good.size(), 4096u) << "keep the exhaustive loop small";
  size_t cases = 0;
  for (size_t off = 0; off < good.size(); ++off) {
    // In memory: every one-bit change and the complement of the byte.
    for (unsigned mask : {0x01u, 0x02u, 0x04u, 0x08u, 0x10u, 0x20u, 0x40u, 0x80u, 0xFFu}) {
      std::string bad = good;
      bad[off] = static_cast<char>(static_cast<unsigned char>(bad[off]) ^ mask);
      EXPECT_THROW(io::parse_checkpoint(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), "flipped"),
                   zae::Error)
          << "byte " << off << " ^ 0x" << std::hex << mask;
      ++cases;
    }
    // On disk, through both file readers.
    std::string bad = good;
    bad[off] = static_cast<char>(static_cast<unsigned char>(bad[off]) ^ 0x01u);
    write(p, bad);
    EXPECT_THROW(io::load_checkpoint(p), zae::Error) << "byte " << off;
    EXPECT_THROW(io::verify_checkpoint(p), zae::Error) << "byte " << off;
  }
  EXPECT_EQ(cases, good.size() * 9);
  // The unmodified image still loads (the loop above did not pass for a wrong reason).
  write(p, good);
  EXPECT_NO_THROW(io::load_checkpoint(p));
  // A change in the tensor data is caught by the checksum and the message says so.
  std::string bad = good;
  bad.back() = static_cast<char>(bad.back() ^ 0x10);
  write(p, bad);
  expect_throws_with([&] { io::load_checkpoint(p); }, {p, "checksum mismatch", "damaged"});
  expect_throws_with([&] { io::verify_checkpoint(p); }, {p, "checksum mismatch"});
}

// A larger file (about 1 MiB): every header byte and a dense random sample of data bytes.
TEST_F(CheckpointFormatTest, SampledByteChangesInALargerFileAreRefused) {
  io::Checkpoint ck = sample_checkpoint();
  ck.tensors.emplace_back("model.big", test::random_tensor({256, 1024}, DType::float32, 99));
  const std::string good = io::serialize_checkpoint(ck);
  ASSERT_GT(good.size(), 1u << 20);
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  std::vector<size_t> offsets;
  for (size_t off = 0; off < 8 + n; ++off) offsets.push_back(off);
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<size_t> pick(8 + n, good.size() - 1);
  for (int i = 0; i < 1000; ++i) offsets.push_back(pick(rng));
  offsets.push_back(8 + n);
  offsets.push_back(good.size() - 1);
  std::string bad = good;
  for (size_t off : offsets) {
    const char saved = bad[off];
    bad[off] = static_cast<char>(static_cast<unsigned char>(saved) ^ (1u << (off % 8)));
    EXPECT_THROW(io::parse_checkpoint(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), "flipped"),
                 zae::Error)
        << "byte " << off;
    bad[off] = saved;
  }
  EXPECT_EQ(bad, good);
  EXPECT_NO_THROW(io::parse_checkpoint(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "good"));
}

TEST_F(CheckpointFormatTest, EveryTruncationAndAnExtensionAreRefused) {
  const std::string good = io::serialize_checkpoint(sample_checkpoint());
  const std::string p = path("cut.ckpt");
  for (size_t len = 0; len < good.size(); ++len) {
    const std::string cut = good.substr(0, len);
    EXPECT_THROW(io::parse_checkpoint(reinterpret_cast<const uint8_t*>(cut.data()), cut.size(), "cut"), zae::Error)
        << "length " << len;
    write(p, cut);
    EXPECT_THROW(io::load_checkpoint(p), zae::Error) << "length " << len;
    EXPECT_THROW(io::verify_checkpoint(p), zae::Error) << "length " << len;
  }
  // A byte too many (a torn append) is refused as well.
  write(p, good + std::string(1, '\0'));
  EXPECT_THROW(io::load_checkpoint(p), zae::Error);
  EXPECT_THROW(io::verify_checkpoint(p), zae::Error);
  // An empty and a missing file name the path.
  write(p, "");
  expect_throws_with([&] { io::load_checkpoint(p); }, {p});
  expect_throws_with([&] { io::load_checkpoint(path("missing.ckpt")); }, {"missing.ckpt"});
  expect_throws_with([&] { io::verify_checkpoint(path("missing.ckpt")); }, {"missing.ckpt"});
}

// ---- crafted files --------------------------------------------------------------------

TEST_F(CheckpointFormatTest, ResealedEditsLoadSoTheCraftedCasesBelowAreMeaningful) {
  // The test's own rewrite + seal produces files the library accepts: a changed user value.
  const std::string good = io::serialize_checkpoint(sample_checkpoint());
  const std::string p = path("edited.ckpt");
  const std::string edited = rewrite(good, "\"user.run\":\"exp-7\"", "\"user.run\":\"exp-8\"");
  write(p, edited);
  expect_throws_with([&] { io::load_checkpoint(p); }, {"checksum mismatch"});  // before sealing
  write(p, seal(edited));
  EXPECT_EQ(io::load_checkpoint(p).user_metadata.at("run"), "exp-8");
}

TEST_F(CheckpointFormatTest, NewerVersionIsRefusedAsNewer) {
  const std::string good = io::serialize_checkpoint(sample_checkpoint());
  const std::string p = path("v2.ckpt");
  write(p, seal(rewrite(good, "\"zae.ckpt.version\":\"1\"", "\"zae.ckpt.version\":\"2\"")));
  EXPECT_EQ(io::read_safetensors_header(p).metadata.at("zae.ckpt.version"), "2");
  expect_throws_with([&] { io::load_checkpoint(p); }, {p, "version 2", "newer than this build reads (1)"});
  expect_throws_with([&] { io::verify_checkpoint(p); }, {p, "newer than this build"});
  // A version that is not a positive integer is a different error.
  for (const char* v : {"0", "x", "-"}) {
    write(p, seal(rewrite(good, "\"zae.ckpt.version\":\"1\"", std::string("\"zae.ckpt.version\":\"") + v + "\"")));
    expect_throws_with([&] { io::load_checkpoint(p); }, {p, "invalid checkpoint version"});
  }
}

TEST_F(CheckpointFormatTest, PlainSafetensorsIsNotACheckpoint) {
  const io::Checkpoint ck = sample_checkpoint();
  const std::string p = path("weights.safetensors");
  io::save_safetensors(p, ck.tensors);
  expect_throws_with([&] { io::load_checkpoint(p); }, {p, "not a zae checkpoint", "absent", "load_safetensors"});
  expect_throws_with([&] { io::verify_checkpoint(p); }, {p, "not a zae checkpoint"});
  io::save_safetensors(p, ck.tensors, {{"format", "pt"}});
  expect_throws_with([&] { io::load_checkpoint(p); }, {p, "not a zae checkpoint", "\"pt\""});
}

// Files with the format tag whose checksum is right but whose other parts are not.
TEST_F(CheckpointFormatTest, CraftedMetadataErrors) {
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"model.w", test::random_tensor({2, 2}, DType::float32, 3)}};
  const std::string p = path("crafted.ckpt");
  const std::string zero = "crc32:00000000";
  auto craft = [&](std::map<std::string, std::string> md) {
    md.emplace("format", "zae-ckpt");
    std::string bytes = io::serialize_safetensors(tensors, md);
    auto sum = md.find("zae.ckpt.checksum");
    if (sum != md.end() && sum->second == zero) bytes = seal(bytes);
    write(p, bytes);
  };
  struct Case {
    std::map<std::string, std::string> md;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}}, {"without \"zae.ckpt.state\""}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "{not json"}},
       {"training state", "invalid JSON"}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", ""}}, {"training state"}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "{\"a\":1}{}"}},
       {"training state", "invalid JSON"}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "{\"a\":1,\"a\":2}"}},
       {"training state"}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "[1,2]"}},
       {"training state is a array, not an object"}},
      {{{"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "{}"}}, {"without \"zae.ckpt.version\""}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.state", "{}"}}, {"without \"zae.ckpt.checksum\""}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", "crc32:0000000"}, {"zae.ckpt.state", "{}"}},
       {"not a valid zae checkpoint", "8 hex digits"}},
      {{{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", "adler:00000000"}, {"zae.ckpt.state", "{}"}},
       {"not a valid zae checkpoint", "crc32:XXXXXXXX"}},
  };
  for (const Case& c : cases) {
    craft(c.md);
    std::vector<std::string> want = c.message;
    want.push_back(p);
    expect_throws_with([&] { io::load_checkpoint(p); }, want);
    expect_throws_with([&] { io::verify_checkpoint(p); }, want);
  }
  // The control: the same recipe with a valid state loads.
  craft({{"zae.ckpt.version", "1"}, {"zae.ckpt.checksum", zero}, {"zae.ckpt.state", "{\"k\":[1]}"}});
  EXPECT_EQ(json::dump(io::load_checkpoint(p).state), "{\"k\":[1]}");
  // Uppercase digits carry the right value but are not the documented spelling.
  std::string sealed = io::serialize_checkpoint(sample_checkpoint());
  const size_t at = digits_offset(sealed);
  std::string upper = sealed;
  for (size_t i = at; i < at + 8; ++i) upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  if (upper != sealed) {
    write(p, upper);
    expect_throws_with([&] { io::load_checkpoint(p); }, {p, "lowercase hex"});
  }
}

// ---- determinism ----------------------------------------------------------------------

TEST_F(CheckpointFormatTest, SerializationIsDeterministic) {
  const std::string a = io::serialize_checkpoint(sample_checkpoint());
  const std::string b = io::serialize_checkpoint(sample_checkpoint());  // built anew, equal values
  EXPECT_EQ(a, b);
  io::save_checkpoint(path("1.ckpt"), sample_checkpoint());
  io::save_checkpoint(path("2.ckpt"), sample_checkpoint());
  EXPECT_EQ(read(path("1.ckpt")), a);
  EXPECT_EQ(read(path("2.ckpt")), a);
  // The same tensors listed in another order and user metadata inserted in another order.
  io::Checkpoint r = sample_checkpoint();
  std::reverse(r.tensors.begin(), r.tensors.end());
  std::map<std::string, std::string> md;
  for (auto it = r.user_metadata.rbegin(); it != r.user_metadata.rend(); ++it) md.insert(*it);
  r.user_metadata = md;
  EXPECT_EQ(io::serialize_checkpoint(r), a);
  // One changed value changes the bytes and the checksum.
  io::Checkpoint c = sample_checkpoint();
  c.tensors[0].second.data<float>()[0] += 1.0f;
  const std::string changed = io::serialize_checkpoint(c);
  ASSERT_EQ(changed.size(), a.size());
  EXPECT_NE(changed, a);
  EXPECT_NE(changed.substr(digits_offset(changed), 8), a.substr(digits_offset(a), 8));
}

}  // namespace
}  // namespace zae
