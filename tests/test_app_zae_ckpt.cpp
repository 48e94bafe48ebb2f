// zae-ckpt on real checkpoints written by the Trainer + StateManagerAddon: inspect shows
// the tensors and the training state, verify accepts the good file and rejects damaged
// ones with exit status 1 (never a crash), convert writes exactly the model's weights.
// The installed-style binaries (zae-ckpt, zae-train) are run once each through their
// build paths (ZAE_CKPT_BIN / ZAE_TRAIN_BIN, set by tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/ckpt/ckpt_commands.h"
#include "apps/ckpt/ckpt_text.h"
#include "apps/fashion_mnist/fashion_mnist_job.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "tests/support/test_util.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/state_manager_addon.h"

namespace zae::test {
namespace {

namespace fs = std::filesystem;
using apps::ckpt::run_ckpt_cli;

/// LineTrainer's steps on a trainer that checkpoints.
class CkptLineTrainer : public Trainer::add_on<StateManagerAddon> {
 public:
  using Base = Trainer::add_on<StateManagerAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& batch) override {
    Tensor diff = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(batch["x"]) - batch["y"];
    return {{"loss", (diff * diff).mean()}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
};

struct Cli {
  int status;
  std::string out, err;
};
Cli cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int status = run_ckpt_cli(args, out, err);
  return {status, out.str(), err.str()};
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Exact equality: same names in the same order, dtypes, shapes and bytes.
void expect_same_tensors(const std::vector<std::pair<std::string, Tensor>>& got, const nn::StateDict& want) {
  ASSERT_EQ(got.size(), want.size());
  std::map<std::string, Tensor> by_name(got.begin(), got.end());
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(by_name.count(name)) << name;
    const Tensor g = by_name.at(name).contiguous();
    const Tensor e = w.detach().to(Device::cpu()).contiguous();
    ASSERT_EQ(g.dtype(), e.dtype()) << name;
    ASSERT_EQ(g.shape(), e.shape()) << name;
    EXPECT_EQ(std::memcmp(g.raw_data(), e.raw_data(), e.nbytes()), 0) << name;
  }
}

class ZaeCkpt : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("zae_ckpt_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    // lr 1.5 overshoots the bias (each step doubles its error): epoch 2 is worse than
    // epoch 1, so the best weights (epoch 1) differ from the final ones.
    LineSetup s = line_setup(1.5, 3);
    DataLoader loader(line_dataset(32), {.batch_size = 8, .shuffle = true, .seed = 5});
    StateManagerOptions sm;
    sm.save_path = dir_;
    sm.metadata = {{"run", "unit-test"}};
    trainer_ = std::make_unique<CkptLineTrainer>(s.options, sm);
    trainer_->run(2, loader);
    model_ = s.model;
    last_ = dir_ + "/last.ckpt";
    ASSERT_TRUE(fs::exists(last_));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_, last_;
  std::unique_ptr<CkptLineTrainer> trainer_;
  std::shared_ptr<nn::Linear> model_;
};

TEST_F(ZaeCkpt, InspectShowsTensorsAndTrainingState) {
  Cli r = cli({"inspect", last_});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"model.weight", "model.bias", "best.weight", "best.bias"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name << "\n" << r.out;
  EXPECT_NE(r.out.find("zae checkpoint, version 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("run = \"unit-test\""), std::string::npos) << r.out;
  const int64_t epoch = trainer_->progress().get_epoch(), step = trainer_->progress().get_step();
  EXPECT_EQ(epoch, 3);
  EXPECT_NE(r.out.find("epoch           3 (next to run; 2 completed)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step            " + std::to_string(step) + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mid-epoch       no"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("optimizer       " + trainer_->options().optimizer->name() + "; group 0 (2 params):"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best            loss " + apps::ckpt::num(trainer_->best_loss()) + " at epoch " +
                       std::to_string(trainer_->best_epoch())),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("loader          epoch 2, 0/4 batches consumed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pending grads   none"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"progress\""), std::string::npos) << "the state JSON is summarised, not dumped";

  // --json: exactly the stored state, pretty-printed.
  Cli j = cli({"inspect", "--json", last_});
  ASSERT_EQ(j.status, 0) << j.err;
  const io::json::Value parsed = io::json::parse(j.out, "inspect --json");
  EXPECT_EQ(io::json::dump(parsed), io::json::dump(io::verify_checkpoint(last_).state));
  EXPECT_NE(j.out.find("\n  \"progress\": {\n    \"epoch\": 3,"), std::string::npos) << j.out;

  // A plain safetensors file: table and metadata; it has no state for --json.
  const std::string plain = dir_ + "/plain.safetensors";
  io::save_module_safetensors(*model_, plain, {{"note", "hi"}});
  Cli p = cli({"inspect", plain});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.out.find("weights only"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("  weight  F32    [1, 1]  4\n"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("total: 2 tensors, 8 bytes"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("note = \"hi\""), std::string::npos) << p.out;
  Cli pj = cli({"inspect", plain, "--json"});
  EXPECT_EQ(pj.status, 1);
  EXPECT_NE(pj.err.find("not a zae checkpoint"), std::string::npos) << pj.err;
}

TEST_F(ZaeCkpt, VerifyAcceptsTheGoodFileAndRejectsDamagedOnes) {
  Cli ok = cli({"verify", last_});
  ASSERT_EQ(ok.status, 0) << ok.err;
  const io::CheckpointInfo info = io::verify_checkpoint(last_);
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", info.checksum);
  EXPECT_EQ(ok.out.rfind("OK: " + last_ + ": " + std::to_string(info.header.entries.size()) + " tensors, crc32 " +
                             crc, 0),
            0u) << ok.out;
  EXPECT_TRUE(ok.err.empty());

  const std::string bytes = read_bytes(last_);
  const std::string bad = dir_ + "/bad.ckpt";
  std::string flipped = bytes;
  flipped[flipped.size() - 3] = static_cast<char>(flipped[flipped.size() - 3] ^ 0x10);  // a data byte
  write_bytes(bad, flipped);
  Cli f = cli({"verify", bad});
  EXPECT_EQ(f.status, 1);
  EXPECT_NE(f.err.find("checksum"), std::string::npos) << f.err;
  EXPECT_TRUE(f.out.empty()) << f.out;

  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t{100}, size_t{5}, size_t{0}}) {
    write_bytes(bad, bytes.substr(0, keep));
    Cli t = cli({"verify", bad});
    EXPECT_EQ(t.status, 1) << "truncated to " << keep;
    EXPECT_NE(t.err.find(bad), std::string::npos) << t.err;
  }
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_bytes(bad, garbage);
  EXPECT_EQ(cli({"verify", bad}).status, 1);
  EXPECT_EQ(cli({"inspect", bad}).status, 1);

  Cli d = cli({"verify", dir_});
  EXPECT_EQ(d.status, 1);
  EXPECT_NE(d.err.find("directory"), std::string::npos) << d.err;
  Cli m = cli({"verify", dir_ + "/missing.ckpt"});
  EXPECT_EQ(m.status, 1);
  EXPECT_NE(m.err.find("missing.ckpt"), std::string::npos) << m.err;

  const std::string plain = dir_ + "/plain.safetensors";
  io::save_module_safetensors(*model_, plain);
  Cli p = cli({"verify", plain});
  EXPECT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.out.find("2 tensors, crc32 "), std::string::npos) << p.out;
}

TEST_F(ZaeCkpt, ConvertWritesTheModelWeightsExactly) {
  const std::string out = dir_ + "/weights.safetensors";
  Cli r = cli({"convert", last_, out});
  ASSERT_EQ(r.status, 0) << r.err;
  const io::SafetensorsData data = io::load_safetensors(out);
  expect_same_tensors(data.tensors, model_->state_dict());
  EXPECT_EQ(data.metadata.at("epoch"), "2");
  EXPECT_EQ(data.metadata.at("step"), std::to_string(trainer_->progress().get_step()));
  EXPECT_EQ(data.metadata.at("source"), "last.ckpt");
  EXPECT_EQ(data.metadata.at("run"), "unit-test");
  // The file loads straight into a fresh model.
  nn::Linear fresh(1, 1);
  io::load_safetensors_into(fresh, out);
  expect_same_tensors(fresh.state_dict(), model_->state_dict());

  ASSERT_EQ(trainer_->best_epoch(), 1);
  ASSERT_NE(trainer_->best_weights().at(1).second.item(), model_->state_dict().at(1).second.item());
  const std::string best = dir_ + "/best.safetensors";
  Cli b = cli({"convert", "--best", last_, best});
  ASSERT_EQ(b.status, 0) << b.err;
  const io::SafetensorsData bd = io::load_safetensors(best);
  expect_same_tensors(bd.tensors, trainer_->best_weights());
  EXPECT_EQ(bd.metadata.at("epoch"), std::to_string(trainer_->best_epoch()));
  EXPECT_EQ(bd.metadata.at("weights"), "best");
}

TEST_F(ZaeCkpt, ConvertRefusesNonCheckpointsAndOverwritingItsInput) {
  const std::string plain = dir_ + "/plain.safetensors";
  io::save_module_safetensors(*model_, plain);
  Cli r = cli({"convert", plain, dir_ + "/out.safetensors"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not a zae checkpoint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ + "/out.safetensors"));

  const std::string before = read_bytes(last_);
  for (const std::string& same : {last_, dir_ + "/./last.ckpt"}) {
    Cli s = cli({"convert", last_, same});
    EXPECT_EQ(s.status, 1);
    EXPECT_NE(s.err.find("is the input file"), std::string::npos) << s.err;
  }
  EXPECT_EQ(read_bytes(last_), before);
  EXPECT_EQ(cli({"convert", dir_ + "/missing.ckpt", dir_ + "/o.safetensors"}).status, 1);
}

TEST(ZaeCkptCli, UsageErrorsExitTwo) {
  EXPECT_EQ(cli({}).status, 2);
  Cli h = cli({"--help"});
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("usage: zae-ckpt"), std::string::npos);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"frobnicate", "x"}, {"verify"}, {"verify", "a", "b"}, {"convert", "a"}, {"inspect", "a", "--bogus"},
           {"verify", "a", "--best"}}) {
    Cli r = cli(args);
    EXPECT_EQ(r.status, 2) << args[0];
    EXPECT_NE(r.err.find("zae-ckpt: "), std::string::npos) << r.err;
  }
}

TEST(ZaeCkptText, NaturalOrderAndSizes) {
  using apps::ckpt::natural_less;
  EXPECT_TRUE(natural_less("optim.2.step", "optim.10.step"));
  EXPECT_FALSE(natural_less("optim.10.step", "optim.2.step"));
  EXPECT_TRUE(natural_less("best.x", "model.x"));
  EXPECT_FALSE(natural_less("a1", "a1"));
  EXPECT_EQ(apps::ckpt::human_bytes(1023), "1023 B");
  EXPECT_EQ(apps::ckpt::human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(apps::ckpt::printable("a\x1b[31m"), "\"a\\u001b[31m\"");
}

#if defined(ZAE_CKPT_BIN) && defined(ZAE_TRAIN_BIN)

// Runs a shell command; returns its exit status and what it wrote (stdout + stderr).
Cli shell(const std::string& command, const std::string& dir) {
  const std::string out = dir + "/cmd.out";
  const int raw = std::system((command + " > " + out + " 2>&1").c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_bytes(out), ""};
}

TEST_F(ZaeCkpt, TheBinaryVerifies) {
  Cli ok = shell(std::string(ZAE_CKPT_BIN) + " verify " + last_, dir_);
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_EQ(ok.out.rfind("OK: ", 0), 0u) << ok.out;
  std::string bytes = read_bytes(last_);
  bytes[bytes.size() - 1] = static_cast<char>(bytes[bytes.size() - 1] ^ 1);
  write_bytes(dir_ + "/bad.ckpt", bytes);
  Cli bad = shell(std::string(ZAE_CKPT_BIN) + " verify " + dir_ + "/bad.ckpt", dir_);
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("checksum mismatch"), std::string::npos) << bad.out;
  EXPECT_EQ(shell(std::string(ZAE_CKPT_BIN), dir_).status, 2);
}

TEST(ZaeTrainCheckpoints, SaveThenResumeContinuesAtEpochTwo) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  const std::string dir = (fs::temp_directory_path() / ("zae_train_ckpt_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string base = std::string(ZAE_TRAIN_BIN) +
                           " fashion-mnist --device cpu --no-bar --limit-train 256 --limit-test 128 --save-dir " +
                           dir + "/ck";
  Cli first = shell(base + " --epochs 1", dir);
  ASSERT_EQ(first.status, 0) << first.out;
  EXPECT_NE(first.out.find("Epoch 1/1"), std::string::npos) << first.out;
  EXPECT_TRUE(fs::exists(dir + "/ck/last.ckpt"));
  EXPECT_TRUE(fs::exists(dir + "/ck/best-epoch1.ckpt"));
  EXPECT_EQ(cli({"verify", dir + "/ck/last.ckpt"}).status, 0);

  Cli second = shell(base + " --resume last --epochs 2 --save-format safetensors", dir);
  ASSERT_EQ(second.status, 0) << second.out;
  EXPECT_NE(second.out.find("resumed from " + dir + "/ck/last.ckpt at epoch 2"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("Epoch 2/2"), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find("Epoch 1/"), std::string::npos) << "epoch 1 must not run again:\n" << second.out;
  Cli inspect = cli({"inspect", dir + "/ck/last.ckpt"});
  EXPECT_NE(inspect.out.find("3 (next to run; 2 completed)"), std::string::npos) << inspect.out;

  Cli no_dir = shell(std::string(ZAE_TRAIN_BIN) + " fashion-mnist --resume last", dir);
  EXPECT_EQ(no_dir.status, 1);
  EXPECT_NE(no_dir.out.find("--resume last needs --save-dir"), std::string::npos) << no_dir.out;
  fs::remove_all(dir);
}

#endif

TEST(ZaeTrainCheckpoints, CheckpointOptionsNeedASaveDir) {
  apps::FashionMnistOptions o;
  o.resume = "last";
  expect_throws_with([&] { apps::run_fashion_mnist(o); }, {"--resume last needs --save-dir"});
  o.resume.clear();
  o.save_every_steps = 10;
  expect_throws_with([&] { apps::run_fashion_mnist(o); }, {"--save-every-steps needs --save-dir"});
  o.save_every_steps = 0;
  o.save_format = "safetensors";
  expect_throws_with([&] { apps::run_fashion_mnist(o); }, {"--save-format needs --save-dir"});
  o.save_dir = "/tmp";
  o.save_format = "pickle";
  expect_throws_with([&] { apps::run_fashion_mnist(o); }, {"save format", "pickle"});
}

}  // namespace
}  // namespace zae::test
