// zae-train gpt2 end to end on the CPU: a tiny GPT-2 learns a repeating token pattern from
// llm.c shards written by the test, checkpoints and resumes, samples the pattern back, and
// the random-shard default runs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "apps/gpt2/gpt2_job.h"
#include "io/token_shards.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace {

using zae::apps::Gpt2JobOptions;
using zae::apps::run_gpt2;

class AppGpt2Test : public zae::test::TempDirTest {
 protected:
  /// Two shards of the sequence 0, 1, ..., 15, 0, 1, ... (a pattern a model can learn).
  std::string pattern_shards() {
    std::vector<uint16_t> tokens(8192);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i % 16);
    zae::io::write_token_shard(path("pat_train_000.bin"), tokens);
    zae::io::write_token_shard(path("pat_train_001.bin"), tokens);
    return path("pat_train_*.bin");
  }
  Gpt2JobOptions base() {
    Gpt2JobOptions o;
    o.config = "tiny";
    o.batch_size = 8;
    o.seq_len = 32;
    o.lr = 3e-3;
    o.warmup = 5;
    o.log_bar = false;
    o.device = "cpu";
    return o;
  }
};

TEST_F(AppGpt2Test, LearnsAPatternResumesAndSamplesIt) {
  Gpt2JobOptions o = base();
  o.data = pattern_shards();
  o.steps = 60;
  o.save_dir = path("ck");
  const auto r = run_gpt2(o);
  EXPECT_EQ(r.steps_run, 60);
  EXPECT_NEAR(r.first_loss, std::log(512.0), 0.5) << "an untrained model is near uniform over the vocabulary";
  EXPECT_LT(r.final_loss, 0.5) << "the pattern is learnable";
  EXPECT_GT(r.tokens_per_second, 0);

  // Resume with --steps 0: nothing trains, the checkpoint's model samples the pattern.
  Gpt2JobOptions s = base();
  s.data = o.data;
  s.save_dir = o.save_dir;
  s.resume = "last";
  s.steps = 0;
  s.sample_tokens = 20;
  s.temperature = 0;  // greedy
  const auto sampled = run_gpt2(s);
  EXPECT_EQ(sampled.steps_run, 0);
  ASSERT_EQ(sampled.sample.size(), 20u);
  for (size_t i = 0; i < sampled.sample.size(); ++i)
    EXPECT_EQ(sampled.sample[i], static_cast<int64_t>((i + 1) % 16)) << "token " << i << " after the prompt 0";

  // Resume and train on: total steps 80 (the first 60 are in the checkpoint).
  Gpt2JobOptions more = o;
  more.resume = "last";
  more.steps = 80;
  const auto r2 = run_gpt2(more);
  EXPECT_EQ(r2.steps_run, 20);
  EXPECT_LT(r2.final_loss, 0.5);
}

TEST_F(AppGpt2Test, Bf16WeightsWithFloat32MastersLearnThePattern) {
  // llm.c's layout: bfloat16 parameters, AdamW's float32 masters with stochastic rounding.
  Gpt2JobOptions o = base();
  o.data = pattern_shards();
  o.steps = 60;
  o.bf16_weights = true;
  o.save_dir = path("bf16");
  const auto r = run_gpt2(o);
  EXPECT_EQ(r.steps_run, 60);
  EXPECT_NEAR(r.first_loss, std::log(512.0), 0.5);
  EXPECT_LT(r.final_loss, 0.7) << "bfloat16 weights with float32 masters learn the pattern too";
  // The checkpoint holds bfloat16 parameters and the float32 masters in AdamW's state.
  const std::string text = read(path("bf16/last.ckpt"));
  EXPECT_NE(text.find("master"), std::string::npos) << "AdamW master weights are checkpointed";

  o.precision = "bf16";  // autocast on top of bfloat16 weights: refused
  zae::test::expect_throws_with([&] { run_gpt2(o); }, {"--bf16-weights", "--precision bf16"});
}

TEST_F(AppGpt2Test, RandomShardsByDefaultAndClearErrors) {
  Gpt2JobOptions o = base();
  o.steps = 3;
  o.save_dir = path("rnd");
  const auto r = run_gpt2(o);
  EXPECT_EQ(r.steps_run, 3);
  EXPECT_NEAR(r.final_loss, std::log(512.0), 0.5);

  Gpt2JobOptions bad = base();
  bad.seq_len = 4096;
  zae::test::expect_throws_with([&] { run_gpt2(bad); }, {"--seq-len 4096", "128"});
  bad = base();
  bad.config = "d7";
  zae::test::expect_throws_with([&] { run_gpt2(bad); }, {"d7"});
  bad = base();
  bad.resume = "last";
  zae::test::expect_throws_with([&] { run_gpt2(bad); }, {"--resume needs --save-dir"});
  bad = base();
  bad.data = path("nothing_*.bin");
  zae::test::expect_throws_with([&] { run_gpt2(bad); }, {"nothing_"});
}

}  // namespace
