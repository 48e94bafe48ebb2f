// io/safetensors writer and reader (valid files), modules with tied weights, the
// crash-safe write helper and the JSON layer. Hostile files: test_io_safetensors_reject.cpp.
// Checked against the format's test vector (REFERENCE.md) byte for byte and against
// the reference writer's ordering and padding rules.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/zae.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "nn/module.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;
using io::SafetensorsData;
using test::expect_throws_with;

class SafetensorsTest : public test::TempDirTest {
 protected:
  size_t files_in_dir() const { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }
};

std::string bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

template <class T>
Tensor from_bits(const std::vector<T>& bits, DType dtype, const Shape& shape) {
  Tensor t = Tensor::empty(shape, {.dtype = dtype});
  EXPECT_EQ(t.nbytes(), bits.size() * sizeof(T));
  if (!bits.empty()) std::memcpy(t.raw_data(), bits.data(), t.nbytes());
  return t;
}

SafetensorsData parse(const std::string& bytes, const io::SafetensorsLoadOptions& options = {}) {
  return io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem", options);
}

std::string header_of(const std::string& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return file.substr(8, n);
}

// ---- the format's test vector ------------------------------------------------------------

TEST_F(SafetensorsTest, ReferenceTestVectorByteForByte) {
  Tensor t = arange(0, 6, 1, {.dtype = DType::float32}).reshape({1, 1, 2, 3});
  const std::string bytes = io::serialize_safetensors({{"attn0", t}});
  std::string expected("\x48\0\0\0\0\0\0\0", 8);
  expected += R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(expected.size(), 8u + 65u);
  expected += "       ";  // 7 spaces: N = 72
  const float values[6] = {0, 1, 2, 3, 4, 5};
  expected.append(reinterpret_cast<const char*>(values), 24);
  EXPECT_EQ(bytes, expected);

  SafetensorsData d = parse(expected);
  ASSERT_EQ(d.tensors.size(), 1u);
  EXPECT_EQ(d.tensors[0].first, "attn0");
  EXPECT_EQ(d.tensors[0].second.dtype(), DType::float32);
  EXPECT_EQ(d.tensors[0].second.shape(), (Shape{1, 1, 2, 3}));
  test::expect_close(d.tensors[0].second, {0, 1, 2, 3, 4, 5}, 0, 0);
  EXPECT_TRUE(d.metadata.empty());

  io::save_safetensors(path("v.safetensors"), {{"attn0", t}});
  EXPECT_EQ(read(path("v.safetensors")), expected);
  const io::SafetensorsHeader h = io::read_safetensors_header(path("v.safetensors"));
  EXPECT_EQ(h.header_size, 72u);
  EXPECT_EQ(h.file_size, 104u);
  ASSERT_EQ(h.entries.size(), 1u);
  EXPECT_EQ(h.entries[0].dtype, "F32");
  EXPECT_EQ(h.entries[0].begin, 0u);
  EXPECT_EQ(h.entries[0].end, 24u);
}

// ---- round trips -------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> every_dtype() {
  // Bit patterns that a lossy path would change: -0, inf, NaN with payload, subnormals.
  const std::vector<uint16_t> bf16 = {0x0000, 0x8000, 0x3F80, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x7F7F};
  const std::vector<uint16_t> f16 = {0x0000, 0x8000, 0x3C00, 0x7C00, 0xFC00, 0x7E01, 0x0001, 0x7BFF};
  const std::vector<uint32_t> f32 = {0x00000000u, 0x80000000u, 0x7F800000u, 0x7FC00123u, 0x00000001u, 0x3F800000u};
  const std::vector<uint64_t> f64 = {0x8000000000000000ull, 0x7FF8000000000123ull, 0x0000000000000001ull,
                                     0x3FF0000000000000ull};
  return {
      {"f32", from_bits(f32, DType::float32, {2, 3})},
      {"f64", from_bits(f64, DType::float64, {4})},
      {"bf16", from_bits(bf16, DType::bfloat16, {2, 2, 2})},
      {"f16", from_bits(f16, DType::float16, {8})},
      {"i32", from_bits(std::vector<int32_t>{-2147483647 - 1, -1, 0, 2147483647}, DType::int32, {2, 2})},
      {"i64", from_bits(std::vector<int64_t>{INT64_MIN, -1, INT64_MAX}, DType::int64, {3})},
      {"u8", from_bits(std::vector<uint8_t>{0, 1, 127, 128, 255}, DType::uint8, {5})},
      {"bool", from_bits(std::vector<uint8_t>{1, 0, 0, 1}, DType::bool_, {4})},
      {"scalar", from_bits(std::vector<float>{3.5f}, DType::float32, {})},
      {"empty", Tensor::empty({0}, {.dtype = DType::float64})},
      {"empty_2d", Tensor::empty({3, 0, 2}, {.dtype = DType::int64})},
  };
}

TEST_F(SafetensorsTest, RoundTripEveryDtypeBitExact) {
  const auto tensors = every_dtype();
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quote\" backslash\\ newline\n tab\t ctrl\x01 é 😀"}, {"", "empty key"}};
  io::save_safetensors(path("all.safetensors"), tensors, meta);
  SafetensorsData d = io::load_safetensors(path("all.safetensors"));
  EXPECT_EQ(d.metadata, meta);
  ASSERT_EQ(d.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    auto it = std::find_if(d.tensors.begin(), d.tensors.end(), [&](const auto& p) { return p.first == name; });
    ASSERT_NE(it, d.tensors.end()) << name;
    EXPECT_EQ(it->second.dtype(), t.dtype()) << name;
    EXPECT_EQ(it->second.shape(), t.shape()) << name;
    EXPECT_EQ(bytes_of(it->second), bytes_of(t)) << name;
    EXPECT_TRUE(it->second.is_contiguous() && it->second.device().is_cpu()) << name;
  }
  // The file's order is the data order: ascending offsets.
  const io::SafetensorsHeader h = io::read_safetensors_header(path("all.safetensors"));
  for (size_t i = 1; i < h.entries.size(); ++i) EXPECT_EQ(h.entries[i].begin, h.entries[i - 1].end);
  EXPECT_EQ(h.header_size % 8, 0u);
}

TEST_F(SafetensorsTest, ReferenceOrderingAndPadding) {
  // The reference writer sorts by its dtype enum, descending (U64 I64 F64 .. F32 U32 I32 BF16 F16 .. U8 BOOL),
  // then by name; metadata comes first; spaces pad the header to a multiple of 8.
  auto one = [](DType d) { return Tensor::empty({1}, {.dtype = d}).fill_(1.0); };
  const std::string bytes = io::serialize_safetensors(
      {{"z_bool", one(DType::bool_)}, {"a_u8", one(DType::uint8)}, {"f16", one(DType::float16)},
       {"bf16", one(DType::bfloat16)}, {"b_i32", one(DType::int32)}, {"a_i32", one(DType::int32)},
       {"f32", one(DType::float32)}, {"a_f64", one(DType::float64)}, {"z_i64", one(DType::int64)}},
      {{"k", "v"}});
  const std::string h = header_of(bytes);
  const std::string expected =
      R"({"__metadata__":{"k":"v"},)"
      R"("z_i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("a_f64":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
      R"("f32":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
      R"("a_i32":{"dtype":"I32","shape":[1],"data_offsets":[20,24]},)"
      R"("b_i32":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},)"
      R"("bf16":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},)"
      R"("f16":{"dtype":"F16","shape":[1],"data_offsets":[30,32]},)"
      R"("a_u8":{"dtype":"U8","shape":[1],"data_offsets":[32,33]},)"
      R"("z_bool":{"dtype":"BOOL","shape":[1],"data_offsets":[33,34]}})";
  ASSERT_EQ(h.substr(0, expected.size()), expected);
  EXPECT_EQ(h.size() % 8, 0u);
  EXPECT_EQ(h.find_first_not_of(' ', expected.size()), std::string::npos);
  EXPECT_EQ(h.size() - expected.size(), (8 - expected.size() % 8) % 8);
  EXPECT_EQ(bytes.size(), 8 + h.size() + 34);

  // Empty file and metadata only (what the reference writes).
  EXPECT_EQ(io::serialize_safetensors({}), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_EQ(io::serialize_safetensors({}, {{"a", "b"}}),
            std::string("\x20\0\0\0\0\0\0\0", 8) + R"({"__metadata__":{"a":"b"}})" + "      ");
  EXPECT_EQ(parse(io::serialize_safetensors({})).tensors.size(), 0u);
}

TEST_F(SafetensorsTest, WritesViewsContiguouslyAndEscapesNames) {
  Tensor base = arange(0, 6, 1, {.dtype = DType::float32}).reshape({2, 3});
  Tensor tr = base.t();                                               // non-contiguous (3, 2)
  Tensor ex = scalar_tensor(7.0, {.dtype = DType::int32}).expand({2, 2});  // stride 0
  const std::string name = "we\"ird\\name\n\x01/é";
  SafetensorsData d = parse(io::serialize_safetensors({{name, tr}, {"ex", ex}}));
  ASSERT_EQ(d.tensors.size(), 2u);
  const auto& got = d.tensors[0].first == name ? d.tensors[0].second : d.tensors[1].second;
  test::expect_close(got, {0, 3, 1, 4, 2, 5}, 0, 0);
  EXPECT_NE(io::serialize_safetensors({{name, tr}}).find(R"("we\"ird\\name\n\u0001/é")"), std::string::npos);
  // Disjoint views of one storage are fine; overlapping ones are not.
  EXPECT_NO_THROW(io::serialize_safetensors({{"row0", base.select(0, 0)}, {"row1", base.select(0, 1)}}));
}

TEST_F(SafetensorsTest, WriterErrors) {
  Tensor a = zeros({2, 3});
  expect_throws_with([&] { io::serialize_safetensors({{"a", a}, {"a", zeros({1})}}); }, {"\"a\"", "given twice"});
  expect_throws_with([&] { io::serialize_safetensors({{"u", Tensor()}}); }, {"\"u\"", "undefined"});
  expect_throws_with([&] { io::serialize_safetensors({{"__metadata__", a}}); }, {"reserved"});
  expect_throws_with([&] { io::serialize_safetensors({{"a", a}, {"b", a}}); },
                     {"\"a\"", "\"b\"", "share memory", "clone()"});
  expect_throws_with([&] { io::serialize_safetensors({{"a", a}, {"b", a.select(0, 1)}}); }, {"share memory"});
  expect_throws_with([&] { io::serialize_safetensors({{"bad\xFF", a}}); }, {"tensor name", "not valid UTF-8"});
  expect_throws_with([&] { io::serialize_safetensors({{"a", a}}, {{"k", "\xC0\xAF"}}); },
                     {"metadata value", "not valid UTF-8"});
}

TEST_F(SafetensorsTest, LoadOptionsConvertAndWiden) {
  io::SafetensorsLoadOptions opts;
  opts.dtype = DType::float32;
  SafetensorsData d = parse(io::serialize_safetensors(
                                {{"x", tensor({1.5, -2.25}, {2}, {.dtype = DType::float64})},
                                 {"n", tensor(std::vector<int64_t>{5, 6})}}),
                            opts);
  ASSERT_EQ(d.tensors.size(), 2u);
  for (const auto& [name, t] : d.tensors) {
    if (name == "x") {
      EXPECT_EQ(t.dtype(), DType::float32);
      test::expect_close(t, {1.5, -2.25}, 0, 0);
    } else {
      EXPECT_EQ(t.dtype(), DType::int64);  // integers keep their dtype
    }
  }
  opts.device = Device::cpu();
  opts.dtype = DType::int32;
  expect_throws_with([&] { parse(io::serialize_safetensors({}), opts); }, {"must be a floating dtype"});
}

TEST_F(SafetensorsTest, FileErrorsNameThePath) {
  expect_throws_with([&] { io::load_safetensors(path("missing.safetensors")); },
                     {"missing.safetensors", "No such file or directory"});
  expect_throws_with([&] { io::load_safetensors(dir_.string()); }, {"is a directory"});
  std::ofstream(path("empty.safetensors")).close();
  expect_throws_with([&] { io::load_safetensors(path("empty.safetensors")); },
                     {"empty.safetensors", "0 bytes, shorter than the 8-byte header length"});
  expect_throws_with([&] { io::read_safetensors_header(path("nope")); }, {"read_safetensors_header", "nope"});
}

// ---- modules --------------------------------------------------------------------------------

class Holder : public nn::Module {
 public:
  explicit Holder(Tensor w) : nn::Module("Holder") { register_parameter("weight", std::move(w)); }
};

Tensor entry(const nn::Module& m, const std::string& name) {
  for (const auto& [k, v] : m.state_dict())
    if (k == name) return v;
  ADD_FAILURE() << "no state-dict entry " << name;
  return Tensor();
}

// embed.weight and head.weight are one tensor when `tie`; `count` is an int64 buffer.
class TiedNet : public nn::Module {
 public:
  TiedNet(bool tie, uint64_t seed, DType dtype = DType::float32) : nn::Module("TiedNet") {
    Tensor w = test::random_tensor({3, 2}, dtype, seed);
    register_module("embed", std::make_shared<Holder>(w));
    register_module("head", std::make_shared<Holder>(tie ? w : test::random_tensor({3, 2}, dtype, seed + 1)));
    register_buffer("count", full({}, static_cast<double>(seed), {.dtype = DType::int64}));
  }
};

TEST_F(SafetensorsTest, ModuleRoundTripStrictAndNonStrict) {
  TiedNet src(false, 1), dst(false, 2);
  io::save_module_safetensors(src, path("m.safetensors"), {{"epoch", "3"}});
  const nn::LoadResult r = io::load_safetensors_into(dst, path("m.safetensors"));
  EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty());
  const auto s = src.state_dict(), t = dst.state_dict();
  ASSERT_EQ(s.size(), 3u);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(bytes_of(s[i].second), bytes_of(t[i].second)) << s[i].first;

  // A file with an extra tensor and without "count".
  io::save_safetensors(path("x.safetensors"), {{"embed.weight", zeros({3, 2})},
                                               {"head.weight", zeros({3, 2})},
                                               {"extra", zeros({1})}});
  expect_throws_with([&] { io::load_safetensors_into(dst, path("x.safetensors")); },
                     {"x.safetensors", "missing keys: 'count'", "unexpected keys: 'extra'"});
  const nn::LoadResult loose = io::load_safetensors_into(dst, path("x.safetensors"), false);
  EXPECT_EQ(loose.missing_keys, std::vector<std::string>{"count"});
  EXPECT_EQ(loose.unexpected_keys, std::vector<std::string>{"extra"});
  test::expect_close(entry(dst, "embed.weight"), {0, 0, 0, 0, 0, 0}, 0, 0);

  io::save_safetensors(path("bad.safetensors"), {{"embed.weight", zeros({2, 3})}});
  expect_throws_with([&] { io::load_safetensors_into(dst, path("bad.safetensors"), false); },
                     {"bad.safetensors", "shape mismatch for 'embed.weight'", "[2, 3]", "[3, 2]"});
}

TEST_F(SafetensorsTest, ModuleLoadConvertsDtypes) {
  TiedNet src(false, 5, DType::float64), dst(false, 6, DType::float32);
  io::save_module_safetensors(src, path("m64.safetensors"));
  EXPECT_EQ(io::read_safetensors_header(path("m64.safetensors")).entries[1].dtype, "F64");  // after I64 count
  io::load_safetensors_into(dst, path("m64.safetensors"));
  for (const char* name : {"embed.weight", "head.weight"}) {
    EXPECT_EQ(entry(dst, name).dtype(), DType::float32);
    EXPECT_TRUE(test::all_close(entry(dst, name), entry(src, name).to_vector<double>(), 1e-7, 0)) << name;
  }
  EXPECT_EQ(entry(dst, "count").item<int64_t>(), 5);
}

TEST_F(SafetensorsTest, TiedWeightsWrittenOnceAndReTied) {
  TiedNet src(true, 11);
  ASSERT_EQ(src.state_dict().size(), 3u);  // both names are in the state dict
  io::save_module_safetensors(src, path("tied.safetensors"), {{"user", "data"}});
  const io::SafetensorsHeader h = io::read_safetensors_header(path("tied.safetensors"));
  ASSERT_EQ(h.entries.size(), 2u);  // count + embed.weight
  EXPECT_EQ(h.metadata.at("head.weight"), "embed.weight");
  EXPECT_EQ(h.metadata.at("user"), "data");

  TiedNet tied(true, 12), untied(false, 13);
  EXPECT_NO_THROW(io::load_safetensors_into(tied, path("tied.safetensors")));
  const auto want = bytes_of(entry(src, "embed.weight"));
  EXPECT_EQ(bytes_of(entry(tied, "embed.weight")), want);
  EXPECT_EQ(bytes_of(entry(tied, "head.weight")), want);
  EXPECT_TRUE(entry(tied, "embed.weight").is_same(entry(tied, "head.weight")));  // still tied
  // An untied module gets the alias from the metadata.
  EXPECT_NO_THROW(io::load_safetensors_into(untied, path("tied.safetensors")));
  EXPECT_EQ(bytes_of(entry(untied, "head.weight")), want);
  EXPECT_FALSE(entry(untied, "embed.weight").is_same(entry(untied, "head.weight")));
  // A tied module also loads a file that stores both names (e.g. written untied).
  io::save_module_safetensors(untied, path("both.safetensors"));
  EXPECT_EQ(io::read_safetensors_header(path("both.safetensors")).entries.size(), 3u);
  EXPECT_NO_THROW(io::load_safetensors_into(tied, path("both.safetensors")));
}

TEST_F(SafetensorsTest, PartiallyOverlappingModuleTensorsAreRefused) {
  class Overlap : public nn::Module {
   public:
    Overlap() : nn::Module("Overlap") {
      Tensor base = zeros({4});
      register_buffer("all", base);
      register_buffer("tail", base.narrow(0, 2, 2));
    }
  } m;
  expect_throws_with([&] { io::save_module_safetensors(m, path("o.safetensors")); },
                     {"\"all\"", "\"tail\"", "share memory", "Overlap", "partially overlap"});
  EXPECT_FALSE(fs::exists(path("o.safetensors")));
}

// ---- crash-safe writes ----------------------------------------------------------------------

TEST_F(SafetensorsTest, AtomicWriteReplacesAndKeepsMode) {
  const std::string p = path("f.bin");
  io::write_file_atomic(p, std::string_view("first"));
  ::chmod(p.c_str(), 0640);
  io::write_file_atomic(p, std::string_view("second, longer"));
  EXPECT_EQ(read(p), "second, longer");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(files_in_dir(), 1u);  // no temporary file left
}

TEST_F(SafetensorsTest, AtomicWriteKeepsOldFileWhenWriterThrows) {
  const std::string p = path("w.safetensors");
  io::save_safetensors(p, {{"a", ones({4})}});
  const std::string old = read(p);
  expect_throws_with(
      [&] {
        io::write_file_atomic(p, [&](std::FILE* f) {
          std::fputs("partial garbage", f);
          std::fflush(f);
          ZAE_FAIL("simulated failure midway");
        });
      },
      {"simulated failure midway"});
  EXPECT_EQ(read(p), old);
  EXPECT_EQ(files_in_dir(), 1u);
  EXPECT_NO_THROW(io::load_safetensors(p));
}

TEST_F(SafetensorsTest, AtomicWriteUnwritablePaths) {
  expect_throws_with([&] { io::save_safetensors(path("no/such/dir/x.safetensors"), {}); },
                     {"no/such/dir/x.safetensors", "No such file or directory"});
  io::write_file_atomic(path("file"), std::string_view("x"));
  expect_throws_with([&] { io::save_safetensors(path("file") + "/x.safetensors", {}); },
                     {"file/x.safetensors", "is not a directory"});
  expect_throws_with([&] { io::save_safetensors(dir_.string(), {}); }, {"is a directory"});
  if (::geteuid() != 0) {  // root ignores directory permissions
    fs::create_directories(path("ro"));
    ::chmod(path("ro").c_str(), 0555);
    expect_throws_with([&] { io::save_safetensors(path("ro/x.safetensors"), {}); },
                       {"ro/x.safetensors", "Permission denied"});
    ::chmod(path("ro").c_str(), 0755);
  }
}

TEST_F(SafetensorsTest, AtomicWriteReportsDiskFullAndCleansUp) {
  // RLIMIT_FSIZE makes writes past 4 KiB fail with EFBIG, as a full disk fails with ENOSPC.
  const std::string p = path("big.safetensors");
  io::save_safetensors(p, {{"small", ones({2})}});
  const std::string old = read(p);
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* prev = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string message;
  try {
    io::save_safetensors(p, {{"big", ones({100000})}});
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, prev);
  EXPECT_NE(message.find("big.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(read(p), old);
  EXPECT_EQ(files_in_dir(), 1u);
}

// ---- JSON layer ------------------------------------------------------------------------------

TEST(Json, ParseDumpAndStrictness) {
  const std::string text = R"({"a":[1,-2,3.5e1,true,false,null],"b":{"c":"\u00e9\ud83d\ude00\n"}})";
  const io::json::Value v = io::json::parse(text, "t");
  EXPECT_EQ(io::json::dump(v), R"({"a":[1,-2,3.5e1,true,false,null],"b":{"c":"é😀\n"}})");
  EXPECT_EQ(v.find("b")->find("c")->text, "é😀\n");
  auto bad = [](const std::string& s, const std::string& what) {
    expect_throws_with([&] { io::json::parse(s, "ctx"); }, {"ctx: invalid JSON", what});
  };
  bad(R"({"a":1,"a":2})", "duplicate key \"a\"");
  bad("[1,]", "expected a value");
  bad("{\"a\":1,}", "expected a string key");
  bad("[01]", "leading zero");
  bad("\"\\ud800\"", "high surrogate");
  bad("\"\\udc00\"", "lone low surrogate");
  bad("\"a\x01\"", "raw control byte");
  bad("\"\\x\"", "unknown escape");
  bad("\"\xC0\xAF\"", "invalid UTF-8");
  bad("[1] 2", "unexpected data after the JSON value");
  bad(std::string(100, '[') + std::string(100, ']'), "nesting deeper than 64 levels");
  bad("", "unexpected end of input");
  bad("tru", "expected true or false");
}

TEST(Json, IntegersAndUtf8) {
  using io::json::IntStatus;
  uint64_t u = 0;
  int64_t i = 0;
  EXPECT_EQ(io::json::to_uint64("18446744073709551615", u), IntStatus::ok);
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_EQ(io::json::to_uint64("18446744073709551616", u), IntStatus::overflow);
  EXPECT_EQ(io::json::to_uint64("-1", u), IntStatus::negative);
  EXPECT_EQ(io::json::to_uint64("1.0", u), IntStatus::not_integer);
  EXPECT_EQ(io::json::to_uint64("1e3", u), IntStatus::not_integer);
  EXPECT_EQ(io::json::to_int64("-9223372036854775808", i), IntStatus::ok);
  EXPECT_EQ(i, INT64_MIN);
  EXPECT_EQ(io::json::to_int64("9223372036854775808", i), IntStatus::overflow);
  EXPECT_EQ(io::json::find_invalid_utf8("ok é 😀"), std::string_view::npos);
  EXPECT_EQ(io::json::find_invalid_utf8("ab\xED\xA0\x80"), 2u);  // surrogate
  EXPECT_EQ(io::json::find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(io::json::find_invalid_utf8("\xE2\x82"), 0u);  // truncated
  EXPECT_EQ(io::json::quote("a\"\\\b\f\n\r\t\x1f\x7f"), "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\"");
}

}  // namespace
}  // namespace zae
