// A small CNN overfits a fixed batch (issue 3, "Must show"): Conv2d(1, 8, 3, padding=1)-
// ReLU-MaxPool2d(2)-Flatten-Linear(8*4*4, 4) on 16 random 1x8x8 images with 4 classes
// reaches cross-entropy < 1e-3 with Adam / AdamW within a bounded number of steps.
// Seeded (manual_seed for the layers' initialisation, a Generator for the data), so the
// run is deterministic; it takes well under a second.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "nn/activation.h"
#include "nn/container.h"
#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/optim/adam.h"
#include "nn/pooling.h"

namespace {

using namespace zae;
using namespace zae::nn;

std::shared_ptr<Sequential> small_cnn() {
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Conv2d>(Conv2d::Options{.in_channels = 1, .out_channels = 8, .kernel_size = 3, .padding = 1}),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
      std::make_shared<Linear>(8 * 4 * 4, 4)});
}

struct OverfitRun {
  double first = 0, last = 0;
  int steps = 0;
};

// Trains `model` with `opt` on one fixed batch until the loss is < 1e-3 or max_steps.
OverfitRun overfit(Sequential& model, optim::Optimizer& opt, int max_steps) {
  Generator gen(7);
  const Tensor x = randn({16, 1, 8, 8}, {.dtype = DType::float32}, &gen);  // (N, C, H, W)
  const Tensor y = randint(0, 4, {16}, {.dtype = DType::int64}, &gen);     // (N)
  OverfitRun r;
  for (; r.steps < max_steps; ++r.steps) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    const double v = loss.item();
    if (r.steps == 0) r.first = v;
    r.last = v;
    EXPECT_TRUE(std::isfinite(v)) << "step " << r.steps;
    if (v < 1e-3) break;
    loss.backward();
    opt.step();
  }
  return r;
}

TEST(TrainingCnn, SmallCnnOverfitsAFixedBatchWithAdamW) {
  manual_seed(2024);
  auto model = small_cnn();
  optim::AdamW opt(model->parameters(), optim::AdamWOptions{.lr = 1e-2});
  const OverfitRun r = overfit(*model, opt, 300);
  EXPECT_GT(r.first, 0.5) << "a fresh 4-class classifier starts near ln(4)";
  EXPECT_LT(r.last, 1e-3) << "after " << r.steps << " steps (first loss " << r.first << ")";
  EXPECT_LT(r.steps, 300);
  std::printf("AdamW: loss %.3g -> %.3g in %d steps\n", r.first, r.last, r.steps);
}

TEST(TrainingCnn, SmallCnnOverfitsAFixedBatchWithAdam) {
  manual_seed(99);
  auto model = small_cnn();
  optim::Adam opt(model->parameters(), optim::AdamOptions{.lr = 1e-2});
  const OverfitRun r = overfit(*model, opt, 300);
  EXPECT_LT(r.last, 1e-3) << "after " << r.steps << " steps (first loss " << r.first << ")";
}

}  // namespace
