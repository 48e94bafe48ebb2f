// The .ckpt seed corpus of the checkpoint fuzzer (tests/fuzz/corpus_ckpt, written by
// tests/fuzz/gen_ckpt_corpus.py, which computes the CRC-32 itself) against the reader:
// every valid_* file loads and verifies, and re-serializing it gives the file's exact
// bytes (the Python writer and io::serialize_checkpoint agree); every reject_* file is
// refused with the error of its own class, naming the file. The table below lists each
// rejection class once: a new reject_* seed without an entry, or an entry without a
// seed, fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/state_json.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

namespace fs = std::filesystem;

fs::path corpus_dir() {
  const char* env = std::getenv("ZAE_FUZZ_CKPT_CORPUS_DIR");
  return env ? fs::path(env) : fs::path(__FILE__).parent_path() / "fuzz" / "corpus_ckpt";
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// reject_<class> -> what its error must say (besides the file's path).
const std::map<std::string, std::vector<std::string>>& rejection_classes() {
  static const std::map<std::string, std::vector<std::string>> classes = {
      {"reject_checksum_mismatch", {"checksum mismatch", "the file is damaged or was modified"}},
      {"reject_data_modified", {"checksum mismatch"}},
      {"reject_checksum_uppercase", {"\"crc32:ABCDEF01\" is not 8 lowercase hex digits"}},
      {"reject_checksum_missing", {"zae checkpoint without \"zae.ckpt.checksum\""}},
      {"reject_checksum_short", {"the checksum is not 8 hex digits"}},
      {"reject_checksum_not_crc32", {"has no \"zae.ckpt.checksum\" member"}},
      {"reject_checksum_member_spaced", {"has no \"zae.ckpt.checksum\" member"}},
      {"reject_not_a_checkpoint", {"not a zae checkpoint", "\"format\" is \"pt\""}},
      {"reject_format_missing", {"not a zae checkpoint", "\"format\" is absent"}},
      {"reject_version_missing", {"zae checkpoint without \"zae.ckpt.version\""}},
      {"reject_version_newer", {"checkpoint version 2 is newer than this build reads (1)"}},
      {"reject_version_zero", {"invalid checkpoint version \"0\""}},
      {"reject_version_not_integer", {"invalid checkpoint version \"1.0\""}},
      {"reject_state_missing", {"zae checkpoint without \"zae.ckpt.state\""}},
      {"reject_state_invalid_json", {"training state: invalid JSON"}},
      {"reject_state_not_object", {"the training state is a array, not an object"}},
      {"reject_state_deep_nesting", {"training state: invalid JSON", "nesting deeper than"}},
      {"reject_state_duplicate_key", {"training state: invalid JSON", "duplicate key \"mode\""}},
      {"reject_truncated", {"the tensors end at byte"}},
      {"reject_bool_byte", {"BOOL element 1 holds byte 2"}},
      {"reject_unsupported_dtype", {"dtype U16 has no engine dtype"}},
      {"reject_not_safetensors", {"header: invalid JSON"}},
  };
  return classes;
}

TEST(CheckpointCorpus, ValidSeedsLoadVerifyAndReserializeExactly) {
  const fs::path dir = corpus_dir();
  ASSERT_TRUE(fs::is_directory(dir)) << "no checkpoint fuzz corpus at " << dir << " (set ZAE_FUZZ_CKPT_CORPUS_DIR)";
  size_t valid = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("valid_", 0) != 0) continue;
    ++valid;
    SCOPED_TRACE(name);
    const std::string bytes = read_bytes(f.path());
    io::Checkpoint ck;
    ASSERT_NO_THROW(ck = io::load_checkpoint(f.path().string()));
    io::CheckpointInfo info;
    ASSERT_NO_THROW(info = io::verify_checkpoint(f.path().string()));
    EXPECT_EQ(info.version, io::kCheckpointVersion);
    EXPECT_EQ(info.header.entries.size(), ck.tensors.size());
    EXPECT_EQ(io::serialize_checkpoint(ck), bytes);
  }
  EXPECT_GE(valid, 5u);
}

TEST(CheckpointCorpus, TrainerStateSeedHoldsWhatTheGeneratorWrote) {
  const io::Checkpoint ck = io::load_checkpoint((corpus_dir() / "valid_trainer_state").string());
  namespace st = io::state;
  const std::string c = "valid_trainer_state";
  EXPECT_EQ(st::get_int(st::get(ck.state, "progress", c), "epoch", c), 3);
  EXPECT_EQ(st::get_int(st::get(ck.state, "progress", c), "step", c), 17);
  EXPECT_EQ(st::get_double(st::get(ck.state, "best", c), "loss", c), 0.125);
  EXPECT_EQ(st::get_double(st::get(ck.state, "loop", c), "early_best", c), INFINITY);
  EXPECT_EQ(st::get_string(st::get(st::get(ck.state, "rng", c), "default", c), "seed", c), "18446744073709551615");
  EXPECT_EQ(ck.user_metadata.at("run"), "fuzz-seed");
  EXPECT_EQ(ck.user_metadata.at("note"), "\xc3\xa9\n\"q\"");
  ASSERT_EQ(ck.tensors.size(), 9u);
  const Tensor w = ck.find("model.w");
  ASSERT_TRUE(w.defined());
  EXPECT_EQ(w.shape(), (Shape{2, 2}));
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{0.5f, -1.0f, 2.0f, 0.0f}));
  EXPECT_EQ(ck.find("optim.0.step").dtype(), DType::int64);
}

TEST(CheckpointCorpus, EachRejectSeedFailsForItsOwnClass) {
  const fs::path dir = corpus_dir();
  ASSERT_TRUE(fs::is_directory(dir)) << "no checkpoint fuzz corpus at " << dir;
  std::set<std::string> seen;
  for (const auto& f : fs::directory_iterator(dir)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("reject_", 0) != 0) continue;
    seen.insert(name);
    auto it = rejection_classes().find(name);
    ASSERT_NE(it, rejection_classes().end()) << name << " has no expected message in this test";
    std::vector<std::string> want = it->second;
    want.push_back(f.path().string());
    SCOPED_TRACE(name);
    test::expect_throws_with([&] { (void)io::load_checkpoint(f.path().string()); }, want);
    test::expect_throws_with([&] { (void)io::verify_checkpoint(f.path().string()); }, want);
  }
  for (const auto& [name, _] : rejection_classes()) EXPECT_TRUE(seen.count(name)) << "no seed file " << name;
}

}  // namespace
}  // namespace zae
