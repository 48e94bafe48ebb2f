// DistributedDataParallel over Gloo, errors and misuse: parameters without gradient (an
// error naming them, or zero with find_unused_parameters), a second backward before
// finish_gradient_sync(), sync_gradients() with a pass pending, teardown with reductions in
// flight, bad options. Every failure is a zae::Error on every rank, never a hang.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/ddp.h"
#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/ops/factory.h"
#include "nn/normalization.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "tests/dist/ddp_test_util.h"
#include "tests/support/test_util.h"

namespace zae::dist {
namespace {

using namespace ddp_test;

class DDPWorld : public ::testing::TestWithParam<int> {};

// ---- unused parameters -------------------------------------------------------------------

class TwoHeads : public nn::Module {
 public:
  // extra_first: the extra head is registered first, so its buckets come last (the body's
  // buckets start before the missing gradient is noticed); else its buckets come first
  // (ranks that do not use it must still start the later buckets in the same order).
  explicit TwoHeads(uint64_t seed, bool extra_first = true) : Module("TwoHeads") {
    manual_seed(seed);
    if (extra_first) extra = register_module("extra", std::make_shared<nn::Linear>(4, 3));
    body = register_module("body", std::make_shared<nn::Linear>(4, 3));
    if (!extra_first) extra = register_module("extra", std::make_shared<nn::Linear>(4, 3));
    to(DType::float64);
  }
  Tensor forward(const Tensor& x, bool use_extra) {
    Tensor out = body->forward(x);
    return use_extra ? out + extra->forward(x) : out;
  }
  std::shared_ptr<nn::Linear> extra, body;
};

TEST_P(DDPWorld, UnusedParameterIsAnErrorNamingIt) {
  const int world = GetParam();
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 61);
  std::vector<std::shared_ptr<TwoHeads>> models;
  for (int r = 0; r < world; ++r) models.push_back(std::make_shared<TwoHeads>(62));
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto& model = models[rank];
    DistributedDataParallel ddp(model, group, {.bucket_cap_mb = 1e-6});
    const Tensor xr = shard(x, rank, 2);
    model->forward(xr, false).pow(2).mean().backward();
    test::expect_throws_with([&] { ddp.finish_gradient_sync(); },
                             {"extra.weight", "extra.bias", "find_unused_parameters = true"});
    EXPECT_TRUE(ddp.has_unsynced_gradients());
    // The pass was reset and the group is still consistent: a correct pass works.
    model->zero_grad();
    model->forward(xr, true).pow(2).mean().backward();
    ddp.finish_gradient_sync();
    EXPECT_FALSE(ddp.has_unsynced_gradients());
    Tensor one = ones({1}, {.dtype = DType::float64});
    group->all_reduce(one);
    EXPECT_EQ(one.item(), world);
  });
}

TEST(DDP, ParameterUnusedOnOneRankOnlyFailsOnEveryRankWithoutHanging) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 65);
  std::vector<std::shared_ptr<TwoHeads>> models;
  for (int r = 0; r < world; ++r) models.push_back(std::make_shared<TwoHeads>(66));
  std::vector<std::string> errors(world);
  const auto start = std::chrono::steady_clock::now();
  run_world(
      world,
      [&](int rank, std::shared_ptr<ProcessGroup> group) {
        DistributedDataParallel ddp(models[rank], group);
        try {  // rank 0 may fail already in backward, when starting a bucket after rank 1 left
          models[rank]->forward(shard(x, rank, 2), rank == 0).pow(2).mean().backward();
          ddp.finish_gradient_sync();
        } catch (const zae::Error& e) {
          errors[rank] = e.what();
        }
      },
      2s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  // Rank 1 names the parameter; rank 0 waits for a reduction rank 1 never starts and
  // fails at the group's timeout (or when rank 1's group goes away).
  EXPECT_NE(errors[1].find("extra.weight"), std::string::npos) << errors[1];
  EXPECT_NE(errors[0].find("DistributedDataParallel (rank 0)"), std::string::npos) << errors[0];
}

void check_find_unused(int world, bool extra_first) {
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 71);
  std::vector<std::shared_ptr<TwoHeads>> models;
  for (int r = 0; r < world; ++r) models.push_back(std::make_shared<TwoHeads>(72, extra_first));
  const size_t extra_weight = extra_first ? 0 : 2;
  std::vector<std::vector<Tensor>> local(world), got(world), after_step(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto& model = models[rank];
    DistributedDataParallel ddp(model, group, {.bucket_cap_mb = 1e-6, .find_unused_parameters = true});
    optim::SGD opt(model->parameters(), {.lr = 0.5});
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      // Only rank 0 uses the extra head.
      model->forward(shard(x, rank, 2), rank == 0).pow(2).mean().backward();
      if (step == 0) local[rank] = grads_of(*model);
      ddp.finish_gradient_sync();
      if (step == 0) got[rank] = grads_of(*model);
      opt.step();
    }
    after_step[rank] = params_of(*model);
  });
  ASSERT_TRUE(local[0][extra_weight].defined());
  for (int r = 1; r < world; ++r)
    ASSERT_FALSE(local[r][extra_weight].defined()) << "rank " << r << " used the extra head";
  std::vector<Tensor> expected;
  for (size_t i = 0; i < local[0].size(); ++i) {
    Tensor sum = zeros_like(local[0][i]);
    for (int r = 0; r < world; ++r)
      if (local[r][i].defined()) sum = sum + local[r][i];
    expected.push_back(sum / static_cast<double>(world));
  }
  for (int r = 0; r < world; ++r) {
    EXPECT_TRUE(rel_close(got[r], expected, 1e-12)) << "rank " << r;
    EXPECT_TRUE(bitwise_equal(after_step[r], after_step[0])) << "rank " << r;
  }
}

TEST_P(DDPWorld, FindUnusedParametersAveragesWithZero) { check_find_unused(GetParam(), true); }
TEST_P(DDPWorld, FindUnusedParametersInEarlyBucketsKeepsOrder) { check_find_unused(GetParam(), false); }

TEST(DDP, UnusedEverywhereWithFindUnusedGetsZeroGradient) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 81);
  std::vector<std::shared_ptr<TwoHeads>> models;
  for (int r = 0; r < world; ++r) models.push_back(std::make_shared<TwoHeads>(82));
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group, {.find_unused_parameters = true});
    models[rank]->forward(shard(x, rank, 2), false).pow(2).mean().backward();
    ddp.finish_gradient_sync();
    const Tensor g = models[rank]->extra->weight().grad();
    ASSERT_TRUE(g.defined());
    for (double v : g.to_vector<double>()) EXPECT_EQ(v, 0.0);
  });
}

// ---- misuse and teardown -----------------------------------------------------------------

TEST(DDP, SecondBackwardWithoutFinishIsAClearError) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 91);
  const Tensor y = test::random_tensor({world * 2, 3}, DType::float64, 92);
  auto models = make_replicas(world, 93);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group);
    auto loss = [&] { return mse(models[rank]->forward(shard(x, rank, 2)), shard(y, rank, 2)); };
    loss().backward();
    test::expect_throws_with([&] { loss().backward(); }, {"twice", "finish_gradient_sync", "no_sync"});
    ddp.finish_gradient_sync();  // the first pass's buckets were started: finishing keeps ranks in step
    EXPECT_FALSE(ddp.has_unsynced_gradients());
  });
}

TEST(DDP, SyncGradientsWhileAPassIsPendingIsAnError) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 94);
  auto models = make_replicas(world, 95);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group);
    models[rank]->forward(shard(x, rank, 2)).pow(2).mean().backward();
    test::expect_throws_with([&] { ddp.sync_gradients(); }, {"finish_gradient_sync"});
    ddp.finish_gradient_sync();
    ddp.sync_gradients();  // fine now (averages averages: unchanged)
  });
}

TEST(DDP, DestructorWaitsInFlightWorkAndRemovesHooks) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 101);
  auto models = make_replicas(world, 102);
  std::vector<std::vector<Tensor>> local(world), after(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto& model = models[rank];
    {
      DistributedDataParallel ddp(model, group, {.bucket_cap_mb = 1e-6});
      model->forward(shard(x, rank, 2)).pow(2).mean().backward();  // buckets start, never finished
    }
    local[rank] = grads_of(*model);  // untouched: the averages were never copied back
    model->forward(shard(x, rank, 2)).pow(2).mean().backward();  // no hooks any more: plain local backward
    after[rank] = grads_of(*model);
    Tensor one = ones({1}, {.dtype = DType::float64});
    group->all_reduce(one);
    EXPECT_EQ(one.item(), world);
  });
  for (int r = 0; r < world; ++r) {
    std::vector<Tensor> twice;
    for (const Tensor& g : local[r]) twice.push_back(g * 2.0);
    EXPECT_TRUE(rel_close(after[r], twice, 1e-12)) << "rank " << r;
  }
  EXPECT_FALSE(bitwise_equal(local[0], local[1]));  // never averaged
}

TEST(DDP, RejectsBadOptions) {
  auto model = make_mlp(1);
  auto store = std::make_shared<MemoryStore>();
  auto group = make_gloo_process_group(store, 0, 1);
  test::expect_throws_with([&] { DistributedDataParallel(model, group, {.bucket_cap_mb = 0}); }, {"bucket_cap_mb"});
  test::expect_throws_with([&] { DistributedDataParallel(nullptr, group); }, {"module"});
  // World of one: finish leaves the gradients as they are.
  DistributedDataParallel ddp(model, group);
  mse(model->forward(test::random_tensor({3, 4}, DType::float64, 2)), test::random_tensor({3, 3}, DType::float64, 3))
      .backward();
  const auto local = grads_of(*model);
  ddp.finish_gradient_sync();
  EXPECT_TRUE(bitwise_equal(grads_of(*model), local));
}
INSTANTIATE_TEST_SUITE_P(Ranks, DDPWorld, ::testing::Values(2, 3), [](const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "ranks";
});

}  // namespace
}  // namespace zae::dist
