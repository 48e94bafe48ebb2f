#include "apps/gpt2/gpt2_job.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <type_traits>

#include "apps/common/device_flag.h"
#include "dist/dist.h"
#include "dist/rendezvous.h"
#include "dist/zero_optimizer.h"
#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/gpt2_safetensors.h"
#include "io/sampler.h"
#include "io/token_shards.h"
#include "nn/gpt2.h"
#include "nn/optim/adam.h"
#include "nn/sched/chain.h"
#include "nn/sched/cosine.h"
#include "nn/sched/warmup.h"
#include "trainer/logging_addon.h"
#include "trainer/multi_gpu_addon.h"
#include "trainer/precision_mixer_addon.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/state_manager_addon.h"

namespace zae::apps {

namespace {

namespace fs = std::filesystem;

template <class Base>
class Gpt2Trainer : public Base {
 public:
  using Base::Base;
  StepOutput train_step(const Batch& batch) override {
    ++train_steps_;
    return {{"loss", static_cast<nn::GPT2&>(this->model()).loss(batch["x"], batch["y"])}};
  }
  StepOutput test_step(const Batch& batch) override {
    return {{"loss", static_cast<nn::GPT2&>(this->model()).loss(batch["x"], batch["y"])}};
  }
  /// Train steps run by this process (a resume's earlier steps not included).
  int64_t train_steps() const { return train_steps_; }

 private:
  int64_t train_steps_ = 0;
};

using PlainGpt2 = Gpt2Trainer<
    Trainer::add_on<MetricLoggersAddon, PrecisionMixerAddon, SignalHandlerAddon, MultiGPUAddon>>;
using CheckpointingGpt2 = Gpt2Trainer<Trainer::add_on<MetricLoggersAddon, PrecisionMixerAddon, StateManagerAddon,
                                                      SignalHandlerAddon, MultiGPUAddon>>;

nn::GPT2Config make_config(const std::string& name) {
  if (name == "tiny") {
    nn::GPT2Config c;
    c.vocab_size = 512;
    c.block_size = 128;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 64;
    return c;
  }
  return nn::GPT2Config::named(name);
}

/// The shards to train on: --data, or random-token shards written under `dir`.
std::vector<std::string> training_shards(const Gpt2JobOptions& o, const nn::GPT2Config& c, const std::string& dir) {
  if (!o.data.empty()) return io::resolve_token_shards(o.data);
  const int64_t tokens = std::max<int64_t>(o.batch_size * (o.seq_len + 1) * 64, 1 << 16);
  // Every rank writes the same bytes; rank 0 writes, the others wait for the files.
  const std::string shard_dir = dir + "/random_shards";
  return io::write_random_token_shards(shard_dir, "random_train", 2, tokens, c.vocab_size, o.seed);
}

template <class T, class... AddOnOptions>
Gpt2JobResult train(const Gpt2JobOptions& o, const TrainerOptions& topts, DataLoader& loader, int64_t epochs,
                    const AddOnOptions&... addon_options) {
  T trainer(topts, addon_options...);
  Gpt2JobResult r;
  const auto start = std::chrono::steady_clock::now();
  // With --steps 0 the run has no epochs: it only resumes (StateManagerAddon) before sampling.
  trainer.run(o.steps > 0 ? epochs : 0, loader);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.steps_run = trainer.train_steps();
  const auto& losses = trainer.loss_history();
  const size_t ran = std::min(losses.size(), static_cast<size_t>(r.steps_run));  // one loss per step
  r.first_loss = ran > 0 ? losses[losses.size() - ran] : std::nan("");
  r.final_loss = ran > 0 ? losses.back() : std::nan("");
  if (r.steps_run > 0 && seconds > 0)
    r.tokens_per_second = static_cast<double>(r.steps_run * o.batch_size * o.seq_len * dist::get_world_size()) / seconds;
  if (dist::is_main_process() && r.steps_run > 0)
    std::printf("gpt2: %lld steps, loss %.4f -> %.4f, %.0f tokens/s\n", static_cast<long long>(r.steps_run),
                r.first_loss, r.final_loss, r.tokens_per_second);
  if (o.sample_tokens > 0 && dist::is_main_process()) {
    auto& model = static_cast<nn::GPT2&>(trainer.model());
    Generator gen(o.seed + 1);
    Tensor prompt = zeros({1, 1}, {.dtype = DType::int64, .device = trainer.device()});
    Tensor out = model.generate(prompt, o.sample_tokens, o.temperature, o.top_k, &gen).to(Device::cpu());
    std::vector<int64_t> ids = out.to_vector<int64_t>();
    r.sample.assign(ids.begin() + 1, ids.end());
    std::printf("sample (token ids, after token 0):");
    for (int64_t id : r.sample) std::printf(" %lld", static_cast<long long>(id));
    std::printf("\n");
  }
  return r;
}

}  // namespace

Gpt2JobResult run_gpt2(const Gpt2JobOptions& o) {
  ZAE_CHECK(o.batch_size >= 1 && o.seq_len >= 1, "gpt2: --batch-size and --seq-len must be >= 1, got ", o.batch_size,
            " and ", o.seq_len);
  ZAE_CHECK(o.steps >= 0 && o.warmup >= 0, "gpt2: --steps and --warmup must be >= 0, got ", o.steps, " and ", o.warmup);
  ZAE_CHECK(o.lr > 0, "gpt2: --lr must be > 0, got ", o.lr);
  ZAE_CHECK(o.sample_tokens >= 0, "gpt2: --sample must be >= 0, got ", o.sample_tokens);
  const bool checkpoints = !o.save_dir.empty();
  ZAE_CHECK(checkpoints || o.resume.empty(), "gpt2: --resume needs --save-dir");
  ZAE_CHECK(checkpoints || o.save_every_steps == 0, "gpt2: --save-every-steps needs --save-dir");
  nn::GPT2Config config = make_config(o.config);
  config.recompute_gelu = o.recompute_gelu;
  config.checkpoint_blocks = o.checkpoint_blocks;
  ZAE_CHECK(o.seq_len <= config.block_size, "gpt2: --seq-len ", o.seq_len, " exceeds the model's context of ",
            config.block_size, " tokens (config ", o.config, ")");
  const Device device = resolve_device(o.device);
  const MetricLoggersOptions loggers = make_loggers(o.loggers, "gpt2");

  const std::string work_dir = checkpoints ? o.save_dir : (fs::temp_directory_path() / "zae-gpt2").string();
  auto dataset = std::make_shared<TokenShardDataset>(training_shards(o, config, work_dir), o.seq_len);
  DataLoader loader(dataset, {.batch_size = o.batch_size, .shuffle = true, .drop_last = true, .seed = o.seed,
                              .num_workers = o.num_workers, .pin_memory = device.is_cuda()});
  ZAE_CHECK(loader.size() > 0, "gpt2: the data holds ", dataset->size(), " windows of ", o.seq_len + 1,
            " tokens, fewer than one batch of ", o.batch_size);

  manual_seed(o.seed);
  auto model = std::make_shared<nn::GPT2>(config);
  if (!o.init_from.empty()) io::load_hf_safetensors(*model, o.init_from);
  ZAE_CHECK(!o.bf16_weights || o.precision == "fp32", "gpt2: --bf16-weights makes the parameters bfloat16 "
            "themselves; it does not combine with --precision ", o.precision, " (leave --precision at fp32)");
  if (o.bf16_weights) model->to(device, DType::bfloat16);
  else model->to(device);
  const auto launched = dist::launch_env_from_environment();
  const optim::AdamWOptions adamw{.lr = o.lr,
                                  .beta1 = 0.9,
                                  .beta2 = 0.95,
                                  .weight_decay = o.weight_decay,
                                  .master_weights = o.bf16_weights,
                                  .stochastic_rounding = o.bf16_weights};
  std::shared_ptr<optim::Optimizer> optimizer;
  if (o.zero) {
    ZAE_CHECK(launched && launched->world_size > 1,
              "gpt2: --zero shards the optimizer state across data parallel ranks; it needs a job of several "
              "processes (start it with zae-launch --nproc-per-node N, N > 1)");
    // Binds to the default group that MultiGPUAddon creates when run() starts.
    optimizer = std::make_shared<dist::ZeroRedundancyOptimizer>(model->parameters(),
                                                                dist::optimizer_factory<optim::AdamW>(adamw));
  } else {
    optimizer = std::make_shared<optim::AdamW>(model->parameters(), adamw);
  }
  // Epochs to cover the steps (max_steps stops inside the last one); the schedule spans them.
  const int64_t epochs = std::max<int64_t>(1, (o.steps + loader.size() - 1) / loader.size());
  const int64_t total = epochs * loader.size();
  std::shared_ptr<sched::Scheduler> scheduler;
  const int64_t warmup = std::min(o.warmup, total - 1);
  auto cosine = [&](int64_t n) { return std::make_shared<sched::CosineAnnealingScheduler>(optimizer, n, o.lr / 10); };
  if (warmup > 0)
    scheduler = std::make_shared<sched::SchedulerChain>(std::vector<std::shared_ptr<sched::Scheduler>>{
        std::make_shared<sched::WarmUpScheduler>(optimizer, warmup), cosine(total - warmup)});
  else
    scheduler = cosine(total);
  if (!launched || launched->rank == 0)
    std::printf("gpt2: config %s (%lld parameters), %lld windows of %lld tokens in %lld shard(s), device %s\n",
                o.config.c_str(), static_cast<long long>(model->num_parameters()),
                static_cast<long long>(dataset->size()), static_cast<long long>(o.seq_len),
                static_cast<long long>(dataset->num_shards()), device.str().c_str());

  TrainerOptions topts;
  topts.model = model;
  topts.device = device;
  topts.optimizer = optimizer;
  topts.scheduler = scheduler;
  topts.scheduler_step_on_batch = true;
  topts.gradient_clip = 1.0;
  topts.log_bar = o.log_bar;
  topts.seed = o.seed;
  if (o.steps > 0) topts.max_steps = o.steps;
  PrecisionMixerOptions precision;
  precision.precision = o.precision;
  if (!checkpoints)
    return train<PlainGpt2>(o, topts, loader, epochs, loggers, precision, SignalHandlerOptions{}, MultiGPUOptions{});
  StateManagerOptions sm;
  sm.save_path = o.save_dir;
  sm.keep_best_k = 0;
  sm.every_n_steps = o.save_every_steps;
  sm.resume = o.resume.empty() ? "none" : o.resume;
  sm.metadata = {{"job", "gpt2"}, {"config", o.config}, {"seq_len", std::to_string(o.seq_len)}};
  return train<CheckpointingGpt2>(o, topts, loader, epochs, loggers, precision, sm, SignalHandlerOptions{},
                                  MultiGPUOptions{});
}

}  // namespace zae::apps
