// Shared pieces of the Trainer tests: a tiny regression problem (y = 2x + 1 with
// noise-free data), a linear model, and a Trainer that fits it with MSE.
#pragma once

#include <memory>
#include <vector>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/linear.h"
#include "nn/optim/sgd.h"
#include "trainer/trainer.h"

namespace zae::test {

/// n samples: x (n, 1) evenly spaced in [-1, 1], y = 2x + 1.
inline std::shared_ptr<TensorDataset> line_dataset(int64_t n = 32) {
  Tensor x = linspace(-1.0, 1.0, n).reshape({n, 1});
  Tensor y = x * 2.0 + 1.0;
  return std::make_shared<TensorDataset>(Batch{{"x", x}, {"y", y}});
}

/// Fits the line with MSE; test_step also returns the prediction as "output".
class LineTrainer : public Trainer {
 public:
  using Trainer::Trainer;
  StepOutput train_step(const Batch& batch) override {
    Tensor pred = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(batch["x"]);
    Tensor diff = pred - batch["y"];
    return {{"loss", (diff * diff).mean()}};
  }
  StepOutput test_step(const Batch& batch) override {
    Tensor pred = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(batch["x"]);
    Tensor diff = pred - batch["y"];
    return {{"loss", (diff * diff).mean()}, {"output", pred}};
  }
};

struct LineSetup {
  std::shared_ptr<nn::Linear> model;
  std::shared_ptr<optim::SGD> optimizer;
  TrainerOptions options;
};

inline LineSetup line_setup(double lr = 0.1, uint64_t seed = 0) {
  manual_seed(seed);
  LineSetup s;
  s.model = std::make_shared<nn::Linear>(1, 1);
  s.optimizer = std::make_shared<optim::SGD>(s.model->parameters(), optim::SGDOptions{.lr = lr});
  s.options.model = s.model;
  s.options.optimizer = s.optimizer;
  s.options.log_bar = false;
  return s;
}

}  // namespace zae::test
