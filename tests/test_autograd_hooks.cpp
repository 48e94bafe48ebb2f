// Post-accumulate-grad hooks (engine/autograd/hooks.h): when they run, what they see, and
// what they refuse.
#include <gtest/gtest.h>

#include <vector>

#include "engine/autograd/engine.h"
#include "engine/autograd/hooks.h"
#include "engine/error.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"
#include "support/test_util.h"

namespace {

using zae::Tensor;
namespace ag = zae::autograd;

TEST(AutogradHooks, RunOnceAfterTheSummedGradientIsInGrad) {
  Tensor w = zae::tensor({1.0, 2.0, 3.0}, {3}, {.dtype = zae::DType::float64, .requires_grad = true});
  std::vector<std::vector<double>> seen;
  ag::register_post_accumulate_grad_hook(w, [&](const Tensor& leaf) { seen.push_back(leaf.grad().to_vector<double>()); });
  // w is used twice: d/dw (sum(w*w) + sum(3w)) = 2w + 3, delivered once.
  (zae::sum(w * w) + zae::sum(w * 3.0)).backward();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (std::vector<double>{5.0, 7.0, 9.0}));
  // A second pass accumulates first, then calls the hook with the total.
  zae::sum(w).backward();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], (std::vector<double>{6.0, 8.0, 10.0}));
}

TEST(AutogradHooks, RunInRegistrationOrderAndCanBeRemoved) {
  Tensor w = zae::ones({2}, {.requires_grad = true});
  std::vector<int> calls;
  const uint64_t a = ag::register_post_accumulate_grad_hook(w, [&](const Tensor&) { calls.push_back(1); });
  ag::register_post_accumulate_grad_hook(w, [&](const Tensor&) { calls.push_back(2); });
  zae::sum(w).backward();
  EXPECT_EQ(calls, (std::vector<int>{1, 2}));
  ag::remove_post_accumulate_grad_hook(w, a);
  ag::remove_post_accumulate_grad_hook(w, a);  // gone already: a no-op
  zae::sum(w).backward();
  EXPECT_EQ(calls, (std::vector<int>{1, 2, 2}));
}

TEST(AutogradHooks, NotCalledForLeavesWithoutGradientOrForAutogradGrad) {
  Tensor used = zae::ones({2}, {.requires_grad = true});
  Tensor unused = zae::ones({2}, {.requires_grad = true});
  int used_calls = 0, unused_calls = 0;
  ag::register_post_accumulate_grad_hook(used, [&](const Tensor&) { ++used_calls; });
  ag::register_post_accumulate_grad_hook(unused, [&](const Tensor&) { ++unused_calls; });
  zae::sum(used * 2.0).backward();
  EXPECT_EQ(used_calls, 1);
  EXPECT_EQ(unused_calls, 0);
  // autograd::grad does not touch .grad, so no hook runs.
  ag::grad({zae::sum(used * 2.0)}, {used});
  EXPECT_EQ(used_calls, 1);
}

TEST(AutogradHooks, AHookThatThrowsAbortsBackward) {
  Tensor w = zae::ones({2}, {.requires_grad = true});
  ag::register_post_accumulate_grad_hook(w, [](const Tensor&) { ZAE_FAIL("hook says no"); });
  zae::test::expect_throws_with([&] { zae::sum(w).backward(); }, {"hook says no"});
}

TEST(AutogradHooks, OnlyLeavesThatRequireGradAccept) {
  Tensor plain = zae::ones({2});
  zae::test::expect_throws_with([&] { ag::register_post_accumulate_grad_hook(plain, [](const Tensor&) {}); },
                                {"only leaves that require grad"});
  Tensor w = zae::ones({2}, {.requires_grad = true});
  Tensor y = w * 2.0;
  zae::test::expect_throws_with([&] { ag::register_post_accumulate_grad_hook(y, [](const Tensor&) {}); },
                                {"has grad_fn 1"});
  zae::test::expect_throws_with([&] { ag::register_post_accumulate_grad_hook(w, nullptr); }, {"empty hook"});
}

}  // namespace
