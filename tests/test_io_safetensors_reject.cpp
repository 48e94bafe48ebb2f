// The hardened safetensors reader against hostile files: one test per rejection class
// of REFERENCE.md (and the engine's own: unsupported dtypes, BOOL bytes, rank), each
// checking that the error is the distinct one for its class and names the origin and
// the offending tensor or field; the known bugs of other readers (wrapped products,
// reversed offsets, 8 + N overflow, unknown dtypes skipping checks) included. Also
// checks every seed of the fuzz corpus: valid_* files load, reject_* files are refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/zae.h"
#include "io/safetensors.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;

// 8-byte little-endian N (the header's size unless given) + header + data.
std::string file_with(const std::string& header, const std::string& data = "", int64_t n = -1) {
  const uint64_t len = n < 0 ? header.size() : static_cast<uint64_t>(n);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xFF);
  return out + header + data;
}
std::string file_with_u64(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + rest;
}

io::SafetensorsData parse(const std::string& bytes, bool widen = false) {
  io::SafetensorsLoadOptions o;
  o.widen_unsupported = widen;
  return io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "hostile.st", o);
}

void rejected(const std::string& bytes, std::vector<std::string> parts, bool widen = false) {
  parts.insert(parts.begin(), "safetensors 'hostile.st'");
  test::expect_throws_with([&] { parse(bytes, widen); }, parts);
}

// One F32 tensor entry.
std::string entry(const std::string& name, const std::string& shape, const std::string& offsets,
                  const std::string& dtype = "F32") {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST(SafetensorsReject, ShortFileAndHeaderLength) {
  rejected("", {"0 bytes, shorter than the 8-byte header length"});
  rejected("\x01\x02\x03\x04\x05\x06\x07", {"7 bytes, shorter than the 8-byte header length"});
  rejected(file_with_u64(100'000'001, "{}"), {"header length 100000001 exceeds the limit of 100000000"});
  rejected(file_with("{}", "", 64), {"header length 64 runs past the end of the file"});
  // 8 + N must not wrap: N = 2^64 - 8 and 2^64 - 1.
  rejected(file_with_u64(UINT64_MAX - 7, "{}      "), {"exceeds the limit"});
  rejected(file_with_u64(UINT64_MAX, "{}      "), {"exceeds the limit"});
}

TEST(SafetensorsReject, HeaderNotUtf8) {
  rejected(file_with("{\"a\xFF\":1}   "), {"header is not valid UTF-8 (byte 3 of the header)"});
  rejected(file_with("{\"\xC0\xAF\":1}  "), {"not valid UTF-8"});      // overlong '/'
  rejected(file_with("{\"\xED\xA0\x80\":1} "), {"not valid UTF-8"});   // surrogate
}

TEST(SafetensorsReject, InvalidJson) {
  rejected(file_with("{\"a\":"), {"invalid JSON", "unexpected end of input"});
  rejected(file_with("{\"a\":{},}"), {"invalid JSON"});
  rejected(file_with("{'a':1}"), {"invalid JSON", "expected a string key"});
  rejected(file_with("{} x"), {"invalid JSON", "unexpected data after the JSON value"});
  rejected(file_with(std::string("{}\0\0\0\0\0\0", 8)), {"invalid JSON", "0x00"});  // NUL padding
  rejected(file_with("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}"), {"leading zero"});
  rejected(file_with("{\"a\tb\":1}"), {"raw control byte"});
  rejected(file_with("{\"\\q\":1}"), {"unknown escape"});
  rejected(file_with("{\"\\ud800\":1}"), {"high surrogate"});
  rejected(file_with(""), {"invalid JSON", "unexpected end of input"});
  rejected(file_with(std::string(1000, '[')), {"invalid JSON", "nesting deeper than 64"});
}

TEST(SafetensorsReject, HeaderNotAnObject) {
  rejected(file_with("[]      "), {"header is a JSON array, not an object"});
  rejected(file_with("\"x\"     "), {"header is a JSON string, not an object"});
  rejected(file_with("12345678"), {"header is a JSON number, not an object"});
  EXPECT_NO_THROW(parse(file_with(" \n{}    ")));  // leading whitespace is JSON (the reference accepts it)
}

TEST(SafetensorsReject, EntryShape) {
  rejected(file_with("{\"t\":5}"), {"tensor \"t\": entry is a JSON number, not an object"});
  rejected(file_with("{\"t\":[1]}"), {"tensor \"t\": entry is a JSON array, not an object"});
  rejected(file_with("{\"t\":{\"shape\":[],\"data_offsets\":[0,4]}}", "xxxx"), {"\"t\": missing field 'dtype'"});
  rejected(file_with("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "xxxx"), {"missing field 'shape'"});
  rejected(file_with("{\"t\":{\"dtype\":\"F32\",\"shape\":[]}}", "xxxx"), {"missing field 'data_offsets'"});
  rejected(file_with("{" + entry("t", "[]", "[0,4]").insert(5, "\"x\":1,") + "}", "xxxx"),
           {"\"t\": unexpected field \"x\""});
  rejected(file_with("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", "xxxx"),
           {"field 'dtype' appears twice"});
  rejected(file_with("{\"t\":{\"dtype\":32,\"shape\":[],\"data_offsets\":[0,4]}}", "xxxx"),
           {"field 'dtype' must be a string, found a JSON number"});
  rejected(file_with("{" + entry("t", "\"1\"", "[0,4]") + "}", "xxxx"),
           {"field 'shape' must be an array of integers, found a JSON string"});
  rejected(file_with("{" + entry("t", "[\"1\"]", "[0,4]") + "}", "xxxx"), {"shape[0] is a JSON string, not an integer"});
  rejected(file_with("{" + entry("t", "[]", "[0,4,8]") + "}", "xxxx"), {"exactly 2 integers", "found more"});
  rejected(file_with("{" + entry("t", "[]", "[4]") + "}", "xxxx"), {"exactly 2 integers", "found 1"});
  rejected(file_with("{" + entry("t", "[]", "{}") + "}", "xxxx"), {"field 'data_offsets' must be an array"});
}

TEST(SafetensorsReject, Dtypes) {
  rejected(file_with("{" + entry("t", "[1]", "[0,4]", "F99") + "}", "xxxx"), {"tensor \"t\"", "unknown dtype \"F99\""});
  rejected(file_with("{" + entry("t", "[1]", "[0,4]", "f32") + "}", "xxxx"), {"unknown dtype \"f32\""});
  // Unknown dtypes do not skip the other checks: a bad dtype with bad offsets is still refused.
  rejected(file_with("{" + entry("t", "[1]", "[0,400]", "Q8") + "}", "xxxx"), {"unknown dtype \"Q8\""});
  // Known but unsupported: the layout is validated first, then the dtype refused.
  rejected(file_with("{" + entry("t", "[4]", "[0,4]", "F8_E4M3") + "}", "xxxx"),
           {"tensor \"t\"", "dtype F8_E4M3 is not supported by the engine"});
  rejected(file_with("{" + entry("t", "[4]", "[0,5]", "F8_E4M3") + "}", "xxxxx"), {"span 5 bytes", "needs 4"});
  rejected(file_with("{" + entry("t", "[3]", "[0,2]", "F4") + "}", "xx"), {"does not fill whole bytes"});
  rejected(file_with("{" + entry("t", "[2]", "[0,4]", "U16") + "}", "xxxx"),
           {"dtype U16 has no engine dtype", "widen_unsupported", "int32"});
  // The header reader lists unsupported dtypes instead of refusing them.
  const std::string f8 = file_with("{" + entry("t", "[4]", "[0,4]", "F8_E5M2") + "}", "xxxx");
  const io::SafetensorsHeader h =
      io::parse_safetensors_header(reinterpret_cast<const uint8_t*>(f8.data()), f8.size(), "f8");
  ASSERT_EQ(h.entries.size(), 1u);
  EXPECT_EQ(h.entries[0].dtype, "F8_E5M2");
}

TEST(SafetensorsReject, Metadata) {
  rejected(file_with("{\"__metadata__\":[]}"), {"__metadata__ is a JSON array, not an object"});
  rejected(file_with("{\"__metadata__\":null}"), {"__metadata__ is a JSON null, not an object"});
  rejected(file_with("{\"__metadata__\":{\"k\":1}}"), {"__metadata__: value of key \"k\" is a JSON number, not a string"});
  rejected(file_with("{\"__metadata__\":{\"k\":{}}}"), {"value of key \"k\" is a JSON object"});
  rejected(file_with("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"), {"__metadata__: key \"k\" appears twice"});
  rejected(file_with("{\"__metadata__\":{},\"__metadata__\":{}}"), {"\"__metadata__\" appears twice"});
}

TEST(SafetensorsReject, Numbers) {
  rejected(file_with("{" + entry("t", "[-1]", "[0,4]") + "}", "xxxx"), {"tensor \"t\"", "shape[0] is negative (-1)"});
  rejected(file_with("{" + entry("t", "[1]", "[-4,0]") + "}", "xxxx"), {"data_offsets[0] (begin) is negative (-4)"});
  rejected(file_with("{" + entry("t", "[1.5]", "[0,4]") + "}", "xxxx"), {"shape[0] is not an integer (1.5)"});
  rejected(file_with("{" + entry("t", "[1]", "[0,4e0]") + "}", "xxxx"), {"data_offsets[1] (end) is not an integer (4e0)"});
  rejected(file_with("{" + entry("t", "[1]", "[0,18446744073709551616]") + "}", "xxxx"),
           {"data_offsets[1] (end) overflows 64 bits (18446744073709551616)"});
  rejected(file_with("{" + entry("t", "[9223372036854775808]", "[0,4]") + "}", "xxxx"),
           {"shape[0] = 9223372036854775808 exceeds 2^63-1"});
}

TEST(SafetensorsReject, SizeArithmetic) {
  // 2^32 x 2^32 wraps to 0 in 64 bits: a reader that wraps would accept [0,0].
  rejected(file_with("{" + entry("t", "[4294967296,4294967296]", "[0,0]") + "}"),
           {"element count of shape [4294967296, 4294967296] overflows 64 bits"});
  // Even with a zero dim later (the reference fails the same way).
  rejected(file_with("{" + entry("t", "[4294967296,4294967296,0]", "[0,0]") + "}"), {"overflows 64 bits"});
  // 2^62 elements x 32 bits overflows the byte size, not the count.
  rejected(file_with("{" + entry("t", "[4611686018427387904]", "[0,0]") + "}"), {"byte size of shape", "overflows"});
  // 2^61 x 4 bytes = 2^63: a signed product would wrap negative.
  rejected(file_with("{" + entry("t", "[2305843009213693952]", "[0,8]") + "}", "xxxxxxxx"),
           {"span 8 bytes but shape [2305843009213693952] of F32 needs 9223372036854775808"});
  rejected(file_with("{" + entry("t", "[2,3]", "[0,20]") + "}", std::string(20, 'x')),
           {"tensor \"t\": data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 needs 24"});
}

TEST(SafetensorsReject, Offsets) {
  // end < begin (a reversed pair must not underflow into a huge size).
  rejected(file_with("{" + entry("t", "[1]", "[4,0]") + "}", "xxxx"), {"data_offsets [4, 0] end before they begin"});
  rejected(file_with("{" + entry("t", "[1]", "[4,8]") + "}", "xxxxxxxx"),
           {"tensor \"t\" starts at byte 4", "the data starts at byte 0 (a gap of 4 bytes)"});
  rejected(file_with("{" + entry("a", "[1]", "[0,4]") + "," + entry("b", "[1]", "[8,12]") + "}", std::string(12, 'x')),
           {"tensor \"b\" starts at byte 8", "previous tensor \"a\" ends at byte 4"});
  rejected(file_with("{" + entry("a", "[2]", "[0,8]") + "," + entry("b", "[2]", "[4,12]") + "}", std::string(12, 'x')),
           {"tensor \"b\" (bytes [4, 12)) overlaps tensor \"a\""});
  rejected(file_with("{" + entry("a", "[1]", "[0,4]") + "," + entry("b", "[1]", "[0,4]") + "}", std::string(4, 'x')),
           {"overlaps"});
}

TEST(SafetensorsReject, DuplicateNames) {
  rejected(file_with("{" + entry("a", "[1]", "[0,4]") + "," + entry("a", "[1]", "[4,8]") + "}", std::string(8, 'x')),
           {"tensor name \"a\" appears twice in the header"});
}

TEST(SafetensorsReject, FileSizeMismatch) {
  rejected(file_with("{" + entry("t", "[2]", "[0,8]") + "}", "xxxx"),
           {"the tensors end at byte 8 of the data buffer, but the file holds 4 bytes", "!= 8 + "});
  rejected(file_with("{" + entry("t", "[1]", "[0,4]") + "}", "xxxxyy"), {"file holds 6 bytes"});
  rejected(file_with("{}", "junk"), {"the tensors end at byte 0", "holds 4 bytes"});
}

TEST(SafetensorsReject, EngineConversion) {
  rejected(file_with("{" + entry("b", "[3]", "[0,3]", "BOOL") + "}", std::string("\x01\x02\x00", 3)),
           {"tensor \"b\": BOOL element 1 holds byte 2"});
  rejected(file_with("{" + entry("t", "[1,1,1,1,1,1,1,1,1]", "[0,4]") + "}", "xxxx"), {"9 dims", "at most 8"});
  std::string big(8, '\xFF');
  rejected(file_with("{" + entry("u", "[1]", "[0,8]", "U64") + "}", big), {"U64 element 0", "does not fit in int64"},
           true);
}

TEST(SafetensorsReject, ValidEdgeCasesAccepted) {
  // Zero-sized tensors share offsets; any key order; whitespace; escapes in names.
  const std::string h = "{ \"z\" : {\"data_offsets\":[4,4],\"shape\":[0,3],\"dtype\":\"F64\"},\n\t" +
                        entry("a\\u00e9\\ud83d\\ude00", "[1]", "[0,4]") + "," + entry("e", "[0]", "[0,0]", "I8") +
                        ",\"__metadata__\":{\"k\":\"\\\"v\\\"\"}}\r\n  ";
  io::SafetensorsData d = parse(file_with(h, std::string("\0\0\x80\x3f", 4)), true);
  ASSERT_EQ(d.tensors.size(), 3u);
  EXPECT_EQ(d.tensors[0].first, "e");  // data order: [0,0], [0,4], [4,4]
  EXPECT_EQ(d.tensors[0].second.dtype(), DType::int32);
  EXPECT_EQ(d.tensors[1].first, "aé😀");
  test::expect_close(d.tensors[1].second, {1.0}, 0, 0);
  EXPECT_EQ(d.tensors[2].second.shape(), (Shape{0, 3}));
  EXPECT_EQ(d.metadata.at("k"), "\"v\"");
}

TEST(SafetensorsReject, WidenedDtypes) {
  const int8_t i8[2] = {-128, 127};
  const int16_t i16[2] = {-32768, 32767};
  const uint16_t u16[2] = {0, 65535};
  const uint32_t u32[2] = {0, 4294967295u};
  const uint64_t u64[2] = {0, 9223372036854775807ull};
  std::string data;
  data.append(reinterpret_cast<const char*>(u64), 16);
  data.append(reinterpret_cast<const char*>(u32), 8);
  data.append(reinterpret_cast<const char*>(i16), 4);
  data.append(reinterpret_cast<const char*>(u16), 4);
  data.append(reinterpret_cast<const char*>(i8), 2);
  const std::string h = "{" + entry("u64", "[2]", "[0,16]", "U64") + "," + entry("u32", "[2]", "[16,24]", "U32") +
                        "," + entry("i16", "[2]", "[24,28]", "I16") + "," + entry("u16", "[2]", "[28,32]", "U16") +
                        "," + entry("i8", "[2]", "[32,34]", "I8") + "}";
  io::SafetensorsData d = parse(file_with(h, data), true);
  ASSERT_EQ(d.tensors.size(), 5u);
  const std::vector<std::pair<DType, std::vector<double>>> want = {{DType::int64, {0, 9223372036854775807.0}},
                                                                    {DType::int64, {0, 4294967295.0}},
                                                                    {DType::int32, {-32768, 32767}},
                                                                    {DType::int32, {0, 65535}},
                                                                    {DType::int32, {-128, 127}}};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(d.tensors[i].second.dtype(), want[i].first) << d.tensors[i].first;
    test::expect_close(d.tensors[i].second, want[i].second, 0, 0);
  }
  EXPECT_EQ(d.tensors[0].second.to_vector<int64_t>()[1], INT64_MAX);
  rejected(file_with(h, data), {"tensor \"u64\"", "dtype U64 has no engine dtype"});
}

// Every seed in tests/fuzz/corpus: valid_* loads (widened), reject_* is a zae::Error.
TEST(SafetensorsReject, FuzzCorpusSeeds) {
  const char* env = std::getenv("ZAE_FUZZ_CORPUS_DIR");
  const fs::path dir = env ? fs::path(env) : fs::path(__FILE__).parent_path() / "fuzz" / "corpus";
  if (!fs::exists(dir)) GTEST_SKIP() << "no fuzz corpus at " << dir << " (set ZAE_FUZZ_CORPUS_DIR)";
  size_t valid = 0, reject = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    const std::string name = f.path().filename().string();
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    const std::string bytes = s.str();
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_NO_THROW(parse(bytes, true)) << name;
      ++valid;
    } else if (name.rfind("reject_", 0) == 0) {
      EXPECT_THROW(parse(bytes, true), Error) << name;
      ++reject;
    }
  }
  EXPECT_GE(valid, 9u);
  EXPECT_GE(reject, 20u);
}

}  // namespace
}  // namespace zae
