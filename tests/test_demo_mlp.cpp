// The autograd demo (apps/demo): a 2-layer MLP with hand-written SGD must drive
// the loss of a separable 4-class problem to near zero, decreasing throughout.
#include <gtest/gtest.h>

#include <cmath>

#include "apps/demo/mlp_demo.h"

TEST(DemoMlp, LossCurveFallsToNearZero) {
  zae::demo::MlpDemoOptions opts;  // the defaults zae-train demo uses
  std::vector<double> losses = zae::demo::train_mlp_demo(opts);
  ASSERT_EQ(losses.size(), static_cast<size_t>(opts.steps));
  // Starts near chance (ln 4 = 1.386) ...
  EXPECT_GT(losses.front(), 1.0);
  EXPECT_LT(losses.front(), 2.0);
  // ... falls steadily: each 50-step window ends lower than it started ...
  for (size_t s = 50; s < losses.size(); s += 50) EXPECT_LT(losses[s], losses[s - 50]) << "at step " << s;
  // ... and ends near zero.
  EXPECT_LT(losses[100], 0.2);
  EXPECT_LT(losses.back(), 0.02);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
}

TEST(DemoMlp, SameSeedSameCurve) {
  zae::demo::MlpDemoOptions opts;
  opts.steps = 20;
  EXPECT_EQ(zae::demo::train_mlp_demo(opts), zae::demo::train_mlp_demo(opts));
}
