// The autograd demo: a 2-layer MLP trained with hand-written SGD on a fixed,
// separable 4-class problem (four Gaussian blobs at the corners of a square).
// Shared by `zae-train demo` and its test, so the test checks what users run.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace zae::demo {

struct MlpDemoOptions {
  int64_t samples = 256;  // points, split evenly among 4 classes
  int64_t hidden = 32;
  int64_t steps = 300;
  double lr = 0.5;
  uint64_t seed = 0;
};

/// Trains and returns the loss before each step (size = steps) plus the final loss.
/// `on_step(step, loss)` is called after each step if set.
std::vector<double> train_mlp_demo(const MlpDemoOptions& opts,
                                   const std::function<void(int64_t, double)>& on_step = {});

}  // namespace zae::demo
