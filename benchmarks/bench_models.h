// The two small models the training-step benchmarks time (issue 3's CPU benchmark, issue 9's
// GPU benchmark), built from the public nn API exactly as the PyTorch peers build them:
//   mlp  Linear(784, 1024)-ReLU-Linear(1024, 1024)-ReLU-Linear(1024, 10)       input (B, 784)
//   cnn  Conv2d(1, 32, 3, padding=1)-ReLU-MaxPool2d(2)-Conv2d(32, 64, 3, padding=1)-ReLU-
//        MaxPool2d(2)-Flatten-Linear(64*7*7, 128)-ReLU-Linear(128, 10)           input (B, 1, 28, 28)
#pragma once

#include <cstdint>
#include <memory>

#include "engine/tensor.h"
#include "nn/activation.h"
#include "nn/container.h"
#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/pooling.h"

namespace zae::bench {

constexpr int64_t kClasses = 10;

inline std::shared_ptr<nn::Sequential> make_mlp() {
  using namespace zae::nn;
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Linear>(784, 1024), std::make_shared<ReLU>(), std::make_shared<Linear>(1024, 1024),
      std::make_shared<ReLU>(), std::make_shared<Linear>(1024, kClasses)});
}

inline std::shared_ptr<nn::Sequential> make_cnn() {
  using namespace zae::nn;
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Conv2d>(Conv2d::Options{.in_channels = 1, .out_channels = 32, .kernel_size = 3, .padding = 1}),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Conv2d>(Conv2d::Options{.in_channels = 32, .out_channels = 64, .kernel_size = 3, .padding = 1}),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
      std::make_shared<Linear>(64 * 7 * 7, 128), std::make_shared<ReLU>(), std::make_shared<Linear>(128, kClasses)});
}

/// The input shape of one batch of `batch` samples for the mlp (cnn = false) or the cnn.
inline Shape input_shape(bool cnn, int64_t batch) {
  return cnn ? Shape{batch, 1, 28, 28} : Shape{batch, 784};
}

}  // namespace zae::bench
