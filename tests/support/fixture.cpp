#include "tests/support/fixture.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "engine/error.h"
#include "engine/ops/factory.h"

#ifndef ZAE_FIXTURE_DIR
#error "ZAE_FIXTURE_DIR must point at tests/fixtures"
#endif

namespace zae::test {

namespace {

// A minimal JSON reader for the fixture headers: objects, arrays, strings, integers.
struct Json {
  enum Kind { object, array, string, number } kind = number;
  std::map<std::string, Json> obj;
  std::vector<Json> arr;
  std::string str;
  int64_t num = 0;
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Json parse() {
    skip();
    Json v;
    char c = s_.at(i_);
    if (c == '{') {
      v.kind = Json::object;
      ++i_;
      skip();
      if (s_.at(i_) == '}') {
        ++i_;
        return v;
      }
      while (true) {
        skip();
        std::string key = parse_string();
        skip();
        ZAE_CHECK(s_.at(i_) == ':', "fixture header: expected ':' at ", i_);
        ++i_;
        v.obj[key] = parse();
        skip();
        if (s_.at(i_) == ',') {
          ++i_;
          continue;
        }
        ZAE_CHECK(s_.at(i_) == '}', "fixture header: expected '}' at ", i_);
        ++i_;
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::array;
      ++i_;
      skip();
      if (s_.at(i_) == ']') {
        ++i_;
        return v;
      }
      while (true) {
        v.arr.push_back(parse());
        skip();
        if (s_.at(i_) == ',') {
          ++i_;
          continue;
        }
        ZAE_CHECK(s_.at(i_) == ']', "fixture header: expected ']' at ", i_);
        ++i_;
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::string;
      v.str = parse_string();
      return v;
    }
    size_t used = 0;
    v.num = std::stoll(s_.substr(i_), &used);
    i_ += used;
    return v;
  }

 private:
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n')) ++i_;
  }
  std::string parse_string() {
    ZAE_CHECK(s_.at(i_) == '"', "fixture header: expected a string at ", i_);
    std::string out;
    for (++i_; s_.at(i_) != '"'; ++i_) {
      if (s_[i_] != '\\') {
        out += s_[i_];
        continue;
      }
      const char e = s_.at(++i_);
      const size_t simple = std::string_view("ntrbf").find(e);
      if (simple != std::string_view::npos) {
        out += "\n\t\r\b\f"[simple];
      } else if (e == 'u') {  // \uXXXX (Python's json escapes non-ASCII): the code unit as UTF-8
        ZAE_CHECK(i_ + 4 < s_.size(), "fixture header: truncated \\u escape at ", i_);
        const unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_ + 1, 4), nullptr, 16));
        i_ += 4;
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
      } else {
        out += e;  // \" \\ \/
      }
    }
    ++i_;
    return out;
  }
  const std::string& s_;
  size_t i_ = 0;
};

DType dtype_from(const std::string& s, const std::string& file) {
  if (s == "F64") return DType::float64;
  if (s == "F32") return DType::float32;
  if (s == "I64") return DType::int64;
  if (s == "I32") return DType::int32;
  if (s == "U8") return DType::uint8;
  if (s == "BOOL") return DType::bool_;
  ZAE_FAIL("fixture ", file, ": unsupported dtype ", s);
}

}  // namespace

const Tensor& Fixture::at(const std::string& key) const {
  auto it = tensors.find(key);
  ZAE_CHECK(it != tensors.end(), "fixture ", name, " has no tensor '", key, "'");
  return it->second;
}

Fixture load_fixture(const std::string& name) {
  // ZAE_FIXTURE_DIR in the environment overrides the build-time path (the tree may have moved).
  const char* env_dir = std::getenv("ZAE_FIXTURE_DIR");
  const std::string path = std::string(env_dir ? env_dir : ZAE_FIXTURE_DIR) + "/" + name + ".safetensors";
  std::ifstream in(path, std::ios::binary);
  ZAE_CHECK(in.good(), "cannot open fixture ", path, " (regenerate with tests/fixtures/gen_*.py)");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string bytes = buf.str();
  ZAE_CHECK(bytes.size() >= 8, "fixture ", path, " is truncated");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  ZAE_CHECK(8 + n <= bytes.size(), "fixture ", path, " header runs past the end");
  Json header = Parser(bytes.substr(8, n)).parse();
  const char* data = bytes.data() + 8 + n;
  Fixture f;
  f.name = name;
  for (const auto& [key, entry] : header.obj) {
    if (key == "__metadata__") {
      for (const auto& [mk, mv] : entry.obj) f.metadata[mk] = mv.str;
      continue;
    }
    DType dt = dtype_from(entry.obj.at("dtype").str, path);
    Shape shape;
    for (const Json& d : entry.obj.at("shape").arr) shape.push_back(d.num);
    int64_t begin = entry.obj.at("data_offsets").arr.at(0).num;
    int64_t end = entry.obj.at("data_offsets").arr.at(1).num;
    Tensor t = Tensor::empty(shape, {.dtype = dt});
    ZAE_CHECK(static_cast<size_t>(end - begin) == t.nbytes() && 8 + n + end <= bytes.size(), "fixture ", path,
              ": tensor '", key, "' has inconsistent offsets");
    if (t.nbytes()) std::memcpy(t.raw_data(), data + begin, t.nbytes());
    f.tensors.emplace(key, t);
  }
  return f;
}

}  // namespace zae::test
