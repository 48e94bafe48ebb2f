// zae-train gpt2 --zero end to end: two CPU processes under zae-launch train a tiny GPT-2
// with AdamW sharded by dist::ZeroRedundancyOptimizer (ZeRO-1) inside the Trainer with
// MultiGPUAddon and StateManagerAddon. Checks: a ZeRO run's checkpoint (consolidated on
// every rank's behalf before rank 0 writes) equals, tensor for tensor and bitwise, a plain
// data parallel run's (weights and AdamW state); a ZeRO checkpoint resumed with --zero
// (sharded load) and without it (plain load) trains bitwise alike; --zero outside a job of
// several processes is a clear error. (Exact resume against an uninterrupted run is
// tests/dist/test_zero_optimizer.cpp's: here a run that --steps stops ends its epoch, so
// the resumed run starts the next one.)
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "apps/gpt2/gpt2_job.h"
#include "io/checkpoint.h"
#include "io/token_shards.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace {

class AppGpt2ZeroTest : public zae::test::TempDirTest {
 protected:
  /// Runs `argv` to completion (at most two minutes); returns the wait status, stderr in err_.
  int run(const std::vector<std::string>& argv) {
    const std::string err_path = path("stderr.txt");
    std::filesystem::remove(err_path);
    zae::test::ChildProcess child(argv, /*capture_stdout=*/true, err_path);
    EXPECT_TRUE(child.error().empty()) << child.error();
    std::string line;
    out_.clear();
    while (child.read_line(line, 120000)) out_ += line + "\n";
    if (child.timed_out()) {
      ADD_FAILURE() << "the job did not finish within two minutes";
      child.signal(SIGKILL);
    }
    const int status = child.wait();
    err_ = read(err_path);
    return status;
  }
  /// zae-launch of two zae-train gpt2 ranks on the CPU, saving into `dir`.
  int train(const std::string& dir, int steps, bool zero, bool resume = false) {
    static int port_offset = 0;
    const int port = 20000 + static_cast<int>((::getpid() * 7 + 101 * port_offset++) % 20000);
    std::vector<std::string> argv{ZAE_LAUNCH_BIN, "--nproc-per-node", "2", "--master-port", std::to_string(port),
                                  ZAE_TRAIN_BIN,  "gpt2",             "--config", "tiny", "--device", "cpu",
                                  "--batch-size", "2",  "--seq-len", "16", "--warmup", "2", "--lr", "3e-3",
                                  "--no-bar",     "--steps", std::to_string(steps), "--save-dir", dir,
                                  "--data",       shards()};
    if (zero) argv.push_back("--zero");
    if (resume) {
      argv.push_back("--resume");
      argv.push_back("last");
    }
    return run(argv);
  }
  /// Two small shards (30 windows of 17 tokens: 15 batches of 2, so --steps 20 spans 2 epochs).
  std::string shards() {
    if (!std::filesystem::exists(path("tok_train_000.bin"))) {
      std::vector<uint16_t> tokens(256);
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>((i * 7) % 61);
      zae::io::write_token_shard(path("tok_train_000.bin"), tokens);
      zae::io::write_token_shard(path("tok_train_001.bin"), tokens);
    }
    return path("tok_train_*.bin");
  }
  std::string out_, err_;
};

std::map<std::string, zae::Tensor> tensors_of(const std::string& ckpt) {
  std::map<std::string, zae::Tensor> out;
  for (auto& [name, t] : zae::io::load_checkpoint(ckpt).tensors) out[name] = t;
  return out;
}

/// Every tensor of `a` is in `b` with the same bytes, and the other way round.
::testing::AssertionResult same_tensors(const std::string& a, const std::string& b) {
  const auto ta = tensors_of(a), tb = tensors_of(b);
  if (ta.size() != tb.size()) return ::testing::AssertionFailure() << ta.size() << " tensors vs " << tb.size();
  size_t optim = 0;
  for (const auto& [name, t] : ta) {
    auto it = tb.find(name);
    if (it == tb.end()) return ::testing::AssertionFailure() << name << " is missing from " << b;
    const zae::Tensor x = t.contiguous(), y = it->second.contiguous();
    if (x.dtype() != y.dtype() || x.shape() != y.shape() || std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0)
      return ::testing::AssertionFailure() << name << " differs";
    optim += name.rfind("optim.", 0) == 0;
  }
  if (optim == 0) return ::testing::AssertionFailure() << "no optimizer state in " << a;
  return ::testing::AssertionSuccess();
}

TEST_F(AppGpt2ZeroTest, ZeroCheckpointsEqualPlainOnesAndResumeLikeThem) {
  const std::string zero = path("zero"), plain = path("plain");
  ASSERT_EQ(train(zero, 6, true), 0) << err_;
  EXPECT_NE(out_.find("gpt2: 6 steps"), std::string::npos) << out_;
  ASSERT_EQ(train(plain, 6, false), 0) << err_;
  EXPECT_TRUE(same_tensors(zero + "/last.ckpt", plain + "/last.ckpt"))
      << "ZeRO-1 must train and checkpoint exactly like plain AdamW";

  // A ZeRO checkpoint after 3 steps, resumed to 6 with --zero (each rank keeps its shard of
  // the full state) and without (plain AdamW loads all of it): the same training.
  const std::string a = path("a"), b = path("b");
  ASSERT_EQ(train(a, 3, true), 0) << err_;
  std::filesystem::create_directories(b);
  std::filesystem::copy_file(a + "/last.ckpt", b + "/last.ckpt");
  // (--steps 3 ended epoch 1; --steps 20 means 2 epochs: epoch 2 trains 7 steps per rank.)
  ASSERT_EQ(train(a, 20, true, /*resume=*/true), 0) << err_;
  EXPECT_NE(out_.find("resumed from"), std::string::npos) << out_;
  EXPECT_NE(out_.find("gpt2: 7 steps"), std::string::npos) << out_;
  ASSERT_EQ(train(b, 20, false, /*resume=*/true), 0) << err_;
  EXPECT_NE(out_.find("gpt2: 7 steps"), std::string::npos) << out_;
  EXPECT_TRUE(same_tensors(a + "/last.ckpt", b + "/last.ckpt"))
      << "resuming a ZeRO checkpoint with and without --zero must train alike";
}

TEST_F(AppGpt2ZeroTest, ZeroOutsideADataParallelJobIsAClearError) {
  zae::apps::Gpt2JobOptions o;
  o.config = "tiny";
  o.device = "cpu";
  o.steps = 1;
  o.log_bar = false;
  o.save_dir = path("ck");
  o.zero = true;
  zae::test::expect_throws_with([&] { zae::apps::run_gpt2(o); }, {"--zero", "zae-launch"});
}

}  // namespace
