// PrecisionMixerAddon on the CPU (explicit bf16 / fp16): training reaches the float32
// loss, master weights and optimizer state stay float32, the fp16 loss scaler skips
// overflowing steps and backs off, and its state travels through checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include "engine/autocast.h"
#include "engine/autograd/hooks.h"
#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/container.h"
#include "nn/linear.h"
#include "nn/activation.h"
#include "nn/optim/adam.h"
#include "support/test_util.h"
#include "trainer/precision_mixer_addon.h"
#include "trainer/training_state.h"

namespace {

using namespace zae;

class MixedTrainer : public Trainer::add_on<PrecisionMixerAddon> {
 public:
  using Base = Trainer::add_on<PrecisionMixerAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& batch) override {
    Tensor logits = static_cast<nn::Sequential&>(model()).forward(batch[0]);
    last_logits_dtype = logits.dtype();
    return {{"loss", cross_entropy(logits, batch[1])}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
  DType last_logits_dtype = DType::float64;
};


/// 512 points of 16 features in 4 Gaussian blobs.
std::shared_ptr<TensorDataset> blobs() {
  Generator gen(5);
  Tensor centers = randn({4, 16}, {}, &gen) * 2.0;
  Tensor labels = randint(0, 4, {512}, {.dtype = DType::int64}, &gen);
  Tensor x = index_select(centers, 0, labels) + randn({512, 16}, {}, &gen);
  return std::make_shared<TensorDataset>(Batch({x, labels}));
}

std::shared_ptr<nn::Sequential> mlp() {
  manual_seed(3);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(16, 64), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 4)});
}

struct TrainResult {
  double final_loss = 0;
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<optim::AdamW> opt;
  DType logits_dtype = DType::float64;
  int64_t skipped = 0;
};

TrainResult train(const std::string& precision, int epochs = 6) {
  TrainResult r;
  r.model = mlp();
  r.opt = std::make_shared<optim::AdamW>(r.model->parameters(), optim::AdamWOptions{.lr = 3e-3});
  TrainerOptions o;
  o.model = r.model;
  o.optimizer = r.opt;
  o.log_bar = false;
  DataLoader loader(blobs(), {.batch_size = 64, .shuffle = true, .seed = 1});
  PrecisionMixerOptions p;
  p.precision = precision;
  MixedTrainer t(o, p);
  t.run(epochs, loader);
  r.final_loss = t.train_metrics().at("loss");
  r.logits_dtype = t.last_logits_dtype;
  r.skipped = t.skipped_optimizer_steps();
  return r;
}

TEST(PrecisionMixer, Bf16AndFp16ReachTheFloat32LossWithFloat32MasterWeights) {
  const TrainResult fp32 = train("fp32");
  EXPECT_EQ(fp32.logits_dtype, DType::float32);
  EXPECT_LT(fp32.final_loss, 0.3) << "the problem must be learnable";
  for (const char* p : {"bf16", "fp16"}) {
    const TrainResult low = train(p);
    EXPECT_EQ(low.logits_dtype, std::string(p) == "bf16" ? DType::bfloat16 : DType::float16) << p;
    EXPECT_NEAR(low.final_loss, fp32.final_loss, 0.002 + 0.2 * fp32.final_loss) << p;
    std::printf("[ %s     ] final train loss %.5f (float32: %.5f)\n", p, low.final_loss, fp32.final_loss);
    EXPECT_EQ(low.skipped, 0) << p;
    for (const auto& [name, param] : low.model->named_parameters()) {
      EXPECT_EQ(param.dtype(), DType::float32) << p << " " << name;
      EXPECT_EQ(param.grad().dtype(), DType::float32) << p << " " << name;
      for (const auto& [key, buf] : low.opt->state(param)) {
        if (buf.numel() > 1) {
          EXPECT_EQ(buf.dtype(), DType::float32) << p << " " << name << "." << key;
        }
      }
    }
  }
}

TEST(PrecisionMixer, Fp16SkipsOverflowingStepsAndBacksOff) {
  auto model = mlp();
  auto opt = std::make_shared<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 1e-3});
  TrainerOptions o;
  o.model = model;
  o.optimizer = opt;
  o.log_bar = false;
  PrecisionMixerOptions p;
  p.precision = "fp16";
  p.scaler.init_scale = 1024;
  p.scaler.growth_interval = 3;
  MixedTrainer t(o, p);
  // Overflow in the 2nd backward: one gradient element becomes inf (as a too-large scale would).
  int backward_count = 0;
  const Tensor w = model->named_parameters().front().second;
  autograd::register_post_accumulate_grad_hook(w, [&](const Tensor& leaf) {
    if (++backward_count == 2) {
      NoGradGuard no_grad;
      Tensor g = leaf.grad();
      g.data<float>()[0] = std::numeric_limits<float>::infinity();
    }
  });
  DataLoader loader(blobs(), {.batch_size = 128});  // 4 steps
  t.run(1, loader);
  EXPECT_EQ(t.skipped_optimizer_steps(), 1);
  EXPECT_EQ(t.optimizer_steps(), 3);
  // Scales: 1024 after step 1 (tracker 1), 512 after the overflow (tracker 0), then 2 clean
  // steps (tracker 2): 512.
  EXPECT_EQ(t.scaler().get_scale(), 512.0);
  EXPECT_EQ(t.scaler().growth_tracker(), 2);
  for (const auto& [name, param] : model->named_parameters()) EXPECT_TRUE(std::isfinite(param.sum().item())) << name;
}

TEST(PrecisionMixer, TheScalerTravelsThroughCheckpoints) {
  auto model = mlp();
  auto opt = std::make_shared<optim::AdamW>(model->parameters());
  TrainerOptions o;
  o.model = model;
  o.optimizer = opt;
  o.log_bar = false;
  PrecisionMixerOptions p;
  p.precision = "fp16";
  p.scaler.init_scale = 4096;
  p.scaler.growth_interval = 2;
  MixedTrainer a(o, p);
  DataLoader loader(blobs(), {.batch_size = 128});
  a.run(1, loader);  // 4 clean steps: 4096 -> 8192 -> 16384
  ASSERT_EQ(a.scaler().get_scale(), 16384.0);
  const io::Checkpoint ck = capture_training_state(a, std::nullopt);

  auto model2 = mlp();
  TrainerOptions o2 = o;
  o2.model = model2;
  o2.optimizer = std::make_shared<optim::AdamW>(model2->parameters());
  MixedTrainer b(o2, p);
  EXPECT_EQ(b.scaler().get_scale(), 4096.0);
  restore_training_state(b, ck, nullptr);
  EXPECT_EQ(b.scaler().get_scale(), 16384.0);
  EXPECT_EQ(b.scaler().growth_tracker(), a.scaler().growth_tracker());
}

TEST(PrecisionMixer, AutoOnTheCpuIsFloat32AndBadNamesAreErrors) {
  EXPECT_EQ(detail::resolve_precision("auto", Device::cpu()), DType::float32);
  EXPECT_EQ(detail::resolve_precision("bf16", Device::cpu()), DType::bfloat16);
  EXPECT_EQ(detail::resolve_precision("fp16", Device::cpu()), DType::float16);
  test::expect_throws_with([] { detail::resolve_precision("int8", Device::cpu()); }, {"int8", "auto, bf16, fp16"});
  const TrainResult r = train("auto", 1);
  EXPECT_EQ(r.logits_dtype, DType::float32);
}

}  // namespace
