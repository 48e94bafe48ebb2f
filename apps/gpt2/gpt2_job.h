// zae-train gpt2: GPT-2 (nn/gpt2.h) trained by the Trainer on llm.c token shards, with
// checkpoints, loggers, mixed precision and data parallel training (MultiGPUAddon joins a
// job started by zae-launch), and sampling from the trained (or resumed) model.
//
//   zae-train gpt2 --config tiny --steps 50                 # random-token shards made on the fly
//   zae-train gpt2 --config d12 --data 'fineweb/*_train_*.bin' --batch-size 16 --seq-len 1024 --precision bf16
//   zae-train gpt2 --config tiny --save-dir ck --resume last --steps 0 --sample 32   # sample from a checkpoint
//
// Without --data it writes deterministic random-token shards (io/token_shards.h) into
// <save-dir or a temporary directory>/random_shards: a benchmark and smoke-test input, not
// text. Steps are optimizer steps (max_steps); the learning rate warms up linearly over
// --warmup steps and then follows a cosine to lr/10 (llm.c's schedule). --zero (only in a
// data parallel job of several processes) shards AdamW's state across the ranks (ZeRO-1);
// its checkpoints hold the full state, so they resume with or without --zero.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/common/logger_flags.h"

namespace zae::apps {

struct Gpt2JobOptions {
  std::string config = "tiny";  ///< tiny (vocab 512, 2 layers, 64 wide) | d12 | d24 | d36 | d48
  std::string data;             ///< token shards: files, a directory, a glob, or a comma list; empty: random
  int64_t batch_size = 4;
  int64_t seq_len = 64;
  int64_t steps = 20;           ///< optimizer steps; 0: no training (sample / evaluate only)
  int64_t warmup = 0;           ///< linear warm-up steps (then cosine)
  double lr = 6e-4;
  double weight_decay = 0.1;
  std::string device = "auto";
  std::string precision = "fp32";  ///< auto | bf16 | fp16 | fp32 (PrecisionMixerAddon)
  bool zero = false;            ///< ZeRO-1: shard AdamW's state across the data parallel ranks (dist/zero_optimizer.h)
  bool recompute_gelu = false;  ///< recompute each MLP's GELU input in backward (GPT2Config::recompute_gelu)
  bool checkpoint_blocks = false;  ///< activation checkpointing per block (GPT2Config::checkpoint_blocks)
  /// llm.c's layout: bfloat16 parameters and gradients, AdamW keeping float32 master weights
  /// and writing the bfloat16 parameters with stochastic rounding (needs --precision fp32:
  /// the model itself is bfloat16, no autocast region is needed).
  bool bf16_weights = false;
  uint64_t seed = 0;
  int num_workers = 0;
  bool log_bar = true;
  std::string init_from;        ///< Hugging Face GPT-2 model.safetensors to start from
  std::string save_dir;         ///< checkpoints (StateManagerAddon): last.ckpt every epoch, every N steps, on signals
  int64_t save_every_steps = 0;
  std::string resume;           ///< last | PATH (needs save_dir)
  int64_t sample_tokens = 0;    ///< > 0: generate this many tokens after training
  double temperature = 1.0;
  int64_t top_k = 40;
  LoggerFlags loggers;
};

struct Gpt2JobResult {
  double first_loss = 0;            ///< the first logged train loss of this run (NaN when none)
  double final_loss = 0;            ///< the last one
  int64_t steps_run = 0;
  double tokens_per_second = 0;     ///< of the training steps of this call
  std::vector<int64_t> sample;      ///< the generated tokens (prompt excluded)
};

Gpt2JobResult run_gpt2(const Gpt2JobOptions& options);

}  // namespace zae::apps
