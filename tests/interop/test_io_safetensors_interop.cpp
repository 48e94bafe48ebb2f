// Interop with Hugging Face's reference `safetensors` Python package (from PyPI; the
// setup script installs it with numpy for the `python3` on PATH, or set ZAE_PYTHON):
// the engine writes every engine dtype, 0-dim and 0-sized tensors and metadata, and
// test_safetensors_python.py checks them with the reference (names, dtypes, shapes,
// bytes, metadata; byte-identical files where the metadata allows); the reference
// writes every dtype incl. U16/U32/U64/I8/I16, BF16 and F8 and the engine loads them.
// Both sides build tensors from one recipe (value() here and in the script).
// Skips, loudly, only when the package cannot be imported.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "engine/zae.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;

std::string python() {
  const char* p = std::getenv("ZAE_PYTHON");
  return p ? p : "python3";
}

std::string script() {
  const char* d = std::getenv("ZAE_INTEROP_DIR");
  const fs::path dir = d ? fs::path(d) : fs::path(__FILE__).parent_path();
  return (dir / "test_safetensors_python.py").string();
}

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Skips (loudly) unless the reference package and numpy import.
bool reference_available() {
  if (run(python() + " -c 'import safetensors, numpy' > /dev/null 2>&1") == 0) return true;
  const std::string msg = "\n*** SKIPPED: the reference Python package 'safetensors' (with numpy) cannot be imported by '" +
                          python() + "'. Run scripts/setup.sh (pip install safetensors numpy) or set ZAE_PYTHON. ***\n";
  std::fprintf(stderr, "%s", msg.c_str());
  std::fflush(stderr);
  return false;
}

// The recipe shared with test_safetensors_python.py: element i of a tensor of file dtype `dt`.
double fvalue(int64_t i) {
  const double specials[4] = {-1.0, -0.0, std::numeric_limits<double>::infinity(),
                              std::numeric_limits<double>::quiet_NaN()};
  return i < 4 ? specials[i] : static_cast<double>(i - 4) * 0.25 - 0.5;
}
int64_t ivalue(const std::string& dt, int64_t i) {
  if (dt == "I32") return (i - 3) * 1000003;
  if (dt == "I64") return (i - 3) * 1000003 * 4294967297LL;
  if (dt == "U8") return (i * 37) % 256;
  if (dt == "BOOL") return i % 3 == 0;
  if (dt == "U16") return (i * 4099) % 65536;
  if (dt == "U32") return static_cast<int64_t>((static_cast<uint64_t>(i) * 2654435761ull) % 4294967296ull);
  if (dt == "U64") {
    const unsigned __int128 v = static_cast<unsigned __int128>(i) * 1140071481932319848ull;
    return static_cast<int64_t>(v % (static_cast<unsigned __int128>(1) << 63));
  }
  if (dt == "I8") return (i * 37) % 256 - 128;
  if (dt == "I16") return (i * 4099) % 65536 - 32768;
  ADD_FAILURE() << "no recipe for " << dt;
  return 0;
}

DType engine_dtype(const std::string& dt) {
  if (dt == "F32") return DType::float32;
  if (dt == "F64") return DType::float64;
  if (dt == "BF16") return DType::bfloat16;
  if (dt == "F16") return DType::float16;
  if (dt == "I32" || dt == "I8" || dt == "I16" || dt == "U16") return DType::int32;
  if (dt == "U8") return DType::uint8;
  if (dt == "BOOL") return DType::bool_;
  return DType::int64;  // I64, U32, U64
}

Tensor recipe(const std::string& dt, const Shape& shape) {
  Tensor t = Tensor::empty(shape, {.dtype = engine_dtype(dt)});
  const bool floating = dt[0] == 'F' || dt == "BF16";
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.template data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, double>)
        p[i] = fvalue(i);
      else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>)
        p[i] = T(static_cast<float>(fvalue(i)));
      else
        p[i] = static_cast<T>(floating ? 0 : ivalue(dt, i));
    }
  });
  return t;
}

std::string bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

class SafetensorsInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!reference_available()) GTEST_SKIP() << "reference safetensors package not importable (see stderr)";
    dir_ = fs::temp_directory_path() / ("zae_st_interop_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string cmd(const std::string& mode) const {
    return python() + " '" + script() + "' " + mode + " '" + dir_.string() + "'";
  }
  fs::path dir_;
};

TEST_F(SafetensorsInterop, EngineWritesReferenceReads) {
  const std::vector<std::tuple<std::string, std::string, Shape>> spec = {
      {"f32", "F32", {2, 3}},    {"f64", "F64", {2, 3}},         {"bf16", "BF16", {2, 3}},
      {"f16", "F16", {2, 3}},    {"i32", "I32", {2, 3}},         {"i64", "I64", {2, 3}},
      {"u8", "U8", {2, 3}},      {"bool", "BOOL", {2, 3}},       {"scalar_f64", "F64", {}},
      {"empty_f32", "F32", {0}}, {"empty_i64", "I64", {2, 0, 3}}, {"nämé/😀", "F32", {1, 1, 5}},
  };
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, dt, shape] : spec) tensors.emplace_back(name, recipe(dt, shape));
  // A non-contiguous view must be written as its contiguous values.
  tensors[0].second = recipe("F32", {2, 3}).t().contiguous().t();
  ASSERT_FALSE(tensors[0].second.is_contiguous());
  io::save_safetensors(path("engine_all.safetensors"), tensors,
                       {{"format", "pt"}, {"note", "é \"quoted\"\n\ttab"}, {"empty", ""}});
  io::save_safetensors(path("engine_one_meta.safetensors"), tensors, {{"format", "pt"}});
  io::save_safetensors(path("engine_no_meta.safetensors"), tensors);
  EXPECT_EQ(run(cmd("check")), 0) << "the reference package rejected or misread an engine-written file (see above)";
}

TEST_F(SafetensorsInterop, ReferenceWritesEngineReads) {
  ASSERT_EQ(run(cmd("write")), 0) << "the reference package failed to write its files";
  io::SafetensorsLoadOptions widen;
  widen.widen_unsupported = true;
  const io::SafetensorsData d = io::load_safetensors(path("python_all.safetensors"), widen);
  EXPECT_EQ(d.metadata, (std::map<std::string, std::string>{{"source", "python"}, {"ü", "ß 😀"}}));
  std::vector<std::tuple<std::string, std::string, Shape>> spec;
  for (const char* dt : {"F32", "F64", "F16", "I32", "I64", "U8", "BOOL", "U16", "U32", "U64", "I8", "I16"}) {
    std::string name = std::string("p_") + dt;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    spec.emplace_back(name, dt, Shape{3, 2});
  }
  spec.emplace_back("p_scalar_i16", "I16", Shape{});
  spec.emplace_back("p_empty_u32", "U32", Shape{0, 4});
  ASSERT_EQ(d.tensors.size(), spec.size());
  for (const auto& [name, dt, shape] : spec) {
    auto it = std::find_if(d.tensors.begin(), d.tensors.end(), [&](const auto& p) { return p.first == name; });
    ASSERT_NE(it, d.tensors.end()) << name;
    const Tensor& t = it->second;
    EXPECT_EQ(t.dtype(), engine_dtype(dt)) << name;
    EXPECT_EQ(t.shape(), shape) << name;
    EXPECT_EQ(bytes_of(t), bytes_of(recipe(dt, shape))) << name << " (" << dt << ")";
  }
  // Without widening, the reference's extra integer dtypes are a clear error.
  test::expect_throws_with([&] { io::load_safetensors(path("python_all.safetensors")); },
                           {"python_all.safetensors", "has no engine dtype", "widen_unsupported"});

  const io::SafetensorsData b = io::load_safetensors(path("python_bf16.safetensors"));
  ASSERT_EQ(b.tensors.size(), 1u);
  EXPECT_EQ(b.tensors[0].second.dtype(), DType::bfloat16);
  EXPECT_EQ(bytes_of(b.tensors[0].second), bytes_of(recipe("BF16", {2, 3})));
  EXPECT_EQ(b.metadata.at("dtype"), "BF16");

  test::expect_throws_with([&] { io::load_safetensors(path("python_f8.safetensors")); },
                           {"python_f8.safetensors", "tensor \"x\"", "dtype F8_E4M3 is not supported"});
  const io::SafetensorsHeader h = io::read_safetensors_header(path("python_f8.safetensors"));
  ASSERT_EQ(h.entries.size(), 1u);
  EXPECT_EQ(h.entries[0].dtype, "F8_E4M3");
}

// A .ckpt is read by ordinary Python tools: safetensors loads every tensor, the state is
// JSON, and zlib.crc32 reproduces the checksum as io/checkpoint.h describes.
TEST_F(SafetensorsInterop, CheckpointOpensWithOrdinaryTools) {
  io::Checkpoint ck;
  ck.tensors.emplace_back("model.w", arange(0.0, 12.0, 1.0, {.dtype = DType::float32}).reshape({3, 4}));
  ck.tensors.emplace_back("model.b", full({4}, 0.5, {.dtype = DType::float16}));  // numpy has no bf16
  ck.tensors.emplace_back("optim.0.step", scalar_tensor(3.0, {.dtype = DType::float64}));
  ck.tensors.emplace_back("grad.mask", full({2, 2}, 1.0, {.dtype = DType::bool_}));
  io::json::Value progress = io::json::Value::make_object();
  progress.members.emplace_back("epoch", io::json::Value::make_int(2));
  progress.members.emplace_back("step", io::json::Value::make_int(17));
  ck.state.members.emplace_back("progress", progress);
  ck.user_metadata["note"] = "ünïcode \"quoted\"";
  io::save_checkpoint(path("a.ckpt"), ck);
  const std::string checker = (fs::path(script()).parent_path() / "check_ckpt_python.py").string();
  EXPECT_EQ(0, run(python() + " " + checker + " " + path("a.ckpt") + " 4"));
}

}  // namespace
}  // namespace zae
