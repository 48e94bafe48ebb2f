// DistributedDataParallel over Gloo, numerics: with the ranks as threads of this process,
// DDP's averaged gradients must equal the gradients of one process training the same model
// (same initial weights) on the concatenated batch with a mean loss, whatever the bucket
// layout and with gradient accumulation; replicas stay bitwise identical through optimizer
// steps; construction and sync_* broadcast rank 0's state. Errors and misuse:
// test_dist_ddp_errors.cpp. All random data comes from explicit seeds.
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

// ---- gradients equal the single-process gradients of the whole batch -------------------

void check_gradients_match(int world, DType dtype, double rtol) {
  constexpr int64_t kPerRank = 5;
  const Tensor x = test::random_tensor({world * kPerRank, 4}, dtype, 11);
  const Tensor y = test::random_tensor({world * kPerRank, 3}, dtype, 12);
  auto models = make_replicas(world + 1, 7, dtype);
  auto ref = models[world];
  mse(ref->forward(x), y).backward();
  const auto expected = grads_of(*ref);

  std::vector<std::vector<Tensor>> got(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group);
    EXPECT_EQ(ddp.bucket_layout().size(), 1u);
    mse(models[rank]->forward(shard(x, rank, kPerRank)), shard(y, rank, kPerRank)).backward();
    ddp.finish_gradient_sync();
    EXPECT_FALSE(ddp.has_unsynced_gradients());
    got[rank] = grads_of(*models[rank]);
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(rel_close(got[r], expected, rtol)) << "rank " << r;
  for (int r = 1; r < world; ++r) EXPECT_TRUE(bitwise_equal(got[r], got[0])) << "rank " << r;
}

TEST_P(DDPWorld, GradientsEqualSingleProcessFloat64) { check_gradients_match(GetParam(), DType::float64, 1e-6); }
TEST_P(DDPWorld, GradientsEqualSingleProcessFloat32) { check_gradients_match(GetParam(), DType::float32, 1e-4); }

// ---- replicas stay identical through optimizer steps -------------------------------------

template <class MakeOpt>
void check_training_steps(int world, MakeOpt make_opt) {
  constexpr int64_t kPerRank = 4;
  constexpr int kSteps = 5;
  std::vector<Tensor> xs, ys;
  for (int s = 0; s < kSteps; ++s) {
    xs.push_back(test::random_tensor({world * kPerRank, 4}, DType::float64, 100 + s));
    ys.push_back(test::random_tensor({world * kPerRank, 3}, DType::float64, 200 + s));
  }
  auto models = make_replicas(world + 1, 21);
  auto ref = models[world];
  {
    auto opt = make_opt(ref->parameters());
    for (int s = 0; s < kSteps; ++s) {
      opt->zero_grad();
      mse(ref->forward(xs[s]), ys[s]).backward();
      opt->step();
    }
  }
  std::vector<std::vector<Tensor>> got(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group, {.bucket_cap_mb = 0.0002});  // several buckets
    auto opt = make_opt(models[rank]->parameters());
    for (int s = 0; s < kSteps; ++s) {
      opt->zero_grad();
      mse(models[rank]->forward(shard(xs[s], rank, kPerRank)), shard(ys[s], rank, kPerRank)).backward();
      ddp.finish_gradient_sync();
      opt->step();
    }
    got[rank] = params_of(*models[rank]);
  });
  for (int r = 1; r < world; ++r) EXPECT_TRUE(bitwise_equal(got[r], got[0])) << "rank " << r;
  EXPECT_TRUE(rel_close(got[0], params_of(*ref), 1e-6));
}

TEST_P(DDPWorld, ReplicasIdenticalAfterSGDSteps) {
  check_training_steps(GetParam(), [](std::vector<Tensor> p) {
    return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  });
}

TEST_P(DDPWorld, ReplicasIdenticalAfterAdamWSteps) {
  check_training_steps(GetParam(), [](std::vector<Tensor> p) {
    return std::make_unique<optim::AdamW>(std::move(p), optim::AdamWOptions{.lr = 1e-2});
  });
}

// ---- gradient accumulation -----------------------------------------------------------

// k micro-batches per rank: the first k - 1 inside no_sync(), the last synchronised (or,
// with `sync_after`, all inside no_sync() and then sync_gradients()).
void check_accumulation(int world, bool sync_after) {
  constexpr int64_t kMicro = 3, kRows = 2;
  const Tensor x = test::random_tensor({world * kMicro * kRows, 4}, DType::float64, 31);
  const Tensor y = test::random_tensor({world * kMicro * kRows, 3}, DType::float64, 32);
  auto models = make_replicas(world + 1, 33);
  mse(models[world]->forward(x), y).backward();
  const auto expected = grads_of(*models[world]);

  std::vector<std::vector<Tensor>> got(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto& model = models[rank];
    DistributedDataParallel ddp(model, group);
    const Tensor xr = shard(x, rank, kMicro * kRows), yr = shard(y, rank, kMicro * kRows);
    auto micro_backward = [&](int64_t j) {
      (mse(model->forward(shard(xr, j, kRows)), shard(yr, j, kRows)) / static_cast<double>(kMicro)).backward();
    };
    {
      auto guard = ddp.no_sync();
      EXPECT_FALSE(ddp.sync_enabled());
      for (int64_t j = 0; j < (sync_after ? kMicro : kMicro - 1); ++j) micro_backward(j);
    }
    EXPECT_TRUE(ddp.sync_enabled());
    EXPECT_TRUE(ddp.has_unsynced_gradients());
    if (sync_after) {
      const auto local = grads_of(*model);
      ddp.finish_gradient_sync();  // no synchronised backward ran: nothing to do
      EXPECT_TRUE(bitwise_equal(grads_of(*model), local));
      EXPECT_TRUE(ddp.has_unsynced_gradients());
      ddp.sync_gradients();
    } else {
      micro_backward(kMicro - 1);
      ddp.finish_gradient_sync();
    }
    EXPECT_FALSE(ddp.has_unsynced_gradients());
    got[rank] = grads_of(*model);
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(rel_close(got[r], expected, 1e-6)) << "rank " << r;
}

TEST_P(DDPWorld, NoSyncAccumulationThenSyncedBackwardEqualsLargeBatch) { check_accumulation(GetParam(), false); }
TEST_P(DDPWorld, SyncGradientsAfterNoSyncEqualsLargeBatch) { check_accumulation(GetParam(), true); }

// ---- buckets ---------------------------------------------------------------------------

TEST_P(DDPWorld, SmallBucketsGiveTheSameGradientsAsOneBucket) {
  const int world = GetParam();
  constexpr int64_t kPerRank = 3;
  const Tensor x = test::random_tensor({world * kPerRank, 4}, DType::float64, 41);
  const Tensor y = test::random_tensor({world * kPerRank, 3}, DType::float64, 42);
  const double caps[] = {25.0, 300.0 / (1024 * 1024), 1e-6};
  std::vector<std::vector<Tensor>> got(3);
  std::vector<std::vector<std::vector<std::string>>> layouts(3);
  for (int c = 0; c < 3; ++c) {
    auto models = make_replicas(world, 43);
    run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
      DistributedDataParallel ddp(models[rank], group, {.bucket_cap_mb = caps[c]});
      mse(models[rank]->forward(shard(x, rank, kPerRank)), shard(y, rank, kPerRank)).backward();
      ddp.finish_gradient_sync();
      if (rank == 0) {
        got[c] = grads_of(*models[rank]);
        layouts[c] = ddp.bucket_layout();
      }
    });
  }
  using Layout = std::vector<std::vector<std::string>>;
  // Reverse registration order; 0.weight 256 B, 0.bias 64 B, 2.weight 192 B, 2.bias 24 B.
  EXPECT_EQ(layouts[0], (Layout{{"2.bias", "2.weight", "0.bias", "0.weight"}}));
  EXPECT_EQ(layouts[1], (Layout{{"2.bias", "2.weight", "0.bias"}, {"0.weight"}}));
  EXPECT_EQ(layouts[2], (Layout{{"2.bias"}, {"2.weight"}, {"0.bias"}, {"0.weight"}}));
  EXPECT_TRUE(rel_close(got[1], got[0], 1e-12));
  EXPECT_TRUE(rel_close(got[2], got[0], 1e-12));
}

// A module whose parameters mix dtypes: buckets never do.
class MixedModel : public nn::Module {
 public:
  MixedModel() : Module("MixedModel") {
    manual_seed(5);
    a = register_module("a", std::make_shared<nn::Linear>(4, 4));
    b = register_module("b", std::make_shared<nn::Linear>(4, 4));
    c = register_module("c", std::make_shared<nn::Linear>(4, 2));
    a->to(DType::float64);
    c->to(DType::float64);
  }
  Tensor forward(const Tensor& x) {
    return c->forward(b->forward(a->forward(x).to(DType::float32)).to(DType::float64));
  }
  std::shared_ptr<nn::Linear> a, b, c;
};

TEST(DDP, BucketsNeverMixDtypesAndRespectTheCap) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 3, 4}, DType::float64, 51);
  const Tensor y = test::random_tensor({world * 3, 2}, DType::float64, 52);
  std::vector<std::shared_ptr<MixedModel>> models;
  for (int i = 0; i <= world; ++i) models.push_back(std::make_shared<MixedModel>());
  mse(models[world]->forward(x), y).backward();
  const auto expected = grads_of(*models[world]);
  const double cap_mb = 200.0 / (1024 * 1024);
  std::vector<std::vector<Tensor>> got(world);
  std::vector<std::vector<std::string>> layout;
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group, {.bucket_cap_mb = cap_mb});
    mse(models[rank]->forward(shard(x, rank, 3)), shard(y, rank, 3)).backward();
    ddp.finish_gradient_sync();
    got[rank] = grads_of(*models[rank]);
    if (rank == 0) layout = ddp.bucket_layout();
  });
  std::map<std::string, Tensor> by_name;
  for (auto& [name, t] : models[0]->named_parameters()) by_name[name] = t;
  std::vector<std::string> order;
  for (const auto& bucket : layout) {
    ASSERT_FALSE(bucket.empty());
    size_t bytes = 0;
    for (const auto& name : bucket) {
      EXPECT_EQ(by_name.at(name).dtype(), by_name.at(bucket[0]).dtype()) << name << " in a bucket with " << bucket[0];
      bytes += by_name.at(name).nbytes();
      order.push_back(name);
    }
    EXPECT_TRUE(bytes <= 200 || bucket.size() == 1) << bucket.size() << " params, " << bytes << " bytes";
  }
  std::vector<std::string> reversed;
  for (auto& [name, t] : models[0]->named_parameters()) reversed.insert(reversed.begin(), name);
  std::vector<std::string> sorted_order = order, sorted_reversed = reversed;
  std::sort(sorted_order.begin(), sorted_order.end());
  std::sort(sorted_reversed.begin(), sorted_reversed.end());
  EXPECT_EQ(sorted_order, sorted_reversed);  // every parameter in exactly one bucket
  EXPECT_EQ(layout.front().front(), "c.bias");
  for (int r = 0; r < world; ++r) EXPECT_TRUE(rel_close(got[r], expected, 1e-5)) << "rank " << r;
}

// ---- construction broadcasts rank 0's state --------------------------------------------------

TEST_P(DDPWorld, ConstructionBroadcastsRankZeroParametersAndBuffers) {
  const int world = GetParam();
  std::vector<std::shared_ptr<nn::Sequential>> models;
  for (int r = 0; r < world; ++r) {
    manual_seed(1000 + r);  // every replica different
    models.push_back(std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::Linear>(4, 6), std::make_shared<nn::BatchNorm1d>(6), std::make_shared<nn::Linear>(6, 2)}));
    NoGradGuard no_grad;
    for (auto& [name, b] : models[r]->named_buffers())
      if (is_floating(b.dtype())) b.fill_(0.5 + r);
  }
  auto state_of = [](const nn::Module& m) {
    std::vector<Tensor> out;
    for (auto& [name, t] : m.state_dict()) out.push_back(t.detach().clone());
    return out;
  };
  const auto rank0 = state_of(*models[0]);
  ASSERT_FALSE(bitwise_equal(state_of(*models[1]), rank0));
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group);
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(bitwise_equal(state_of(*models[r]), rank0)) << "rank " << r;
}

// ---- when the collectives are issued ----------------------------------------------------

// Forwards to a real group and records the size of every all_reduce_async.
class RecordingGroup : public ProcessGroup {
 public:
  explicit RecordingGroup(std::shared_ptr<ProcessGroup> inner)
      : ProcessGroup(inner->rank(), inner->size(), inner->options()), inner_(std::move(inner)) {}
  std::string backend() const override { return inner_->backend(); }
  void all_reduce(Tensor& t, ReduceOp op) override { inner_->all_reduce(t, op); }
  std::shared_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) override {
    async_numels.push_back(t.numel());
    return inner_->all_reduce_async(t, op);
  }
  void broadcast(Tensor& t, int root) override { inner_->broadcast(t, root); }
  Tensor all_gather(const Tensor& in) override { return inner_->all_gather(in); }
  Tensor reduce_scatter(const Tensor& in, ReduceOp op) override { return inner_->reduce_scatter(in, op); }
  void barrier() override { inner_->barrier(); }
  void send(const Tensor& t, int dst, uint32_t tag) override { inner_->send(t, dst, tag); }
  void recv(Tensor& t, int src, uint32_t tag) override { inner_->recv(t, src, tag); }
  void send_recv(const Tensor& out, int dst, Tensor& in, int src, uint32_t tag) override {
    inner_->send_recv(out, dst, in, src, tag);
  }
  std::vector<int64_t> async_numels;

 private:
  std::shared_ptr<ProcessGroup> inner_;
};

TEST(DDP, BucketsStartDuringBackwardInOrderAndNotUnderNoSync) {
  constexpr int world = 2;
  const Tensor x = test::random_tensor({world * 2, 4}, DType::float64, 131);
  auto models = make_replicas(world, 132);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> inner) {
    auto group = std::make_shared<RecordingGroup>(inner);
    auto& model = models[rank];
    DistributedDataParallel ddp(model, group, {.bucket_cap_mb = 1e-6});
    {
      auto guard = ddp.no_sync();
      model->forward(shard(x, rank, 2)).pow(2).mean().backward();
    }
    EXPECT_TRUE(group->async_numels.empty());
    model->forward(shard(x, rank, 2)).pow(2).mean().backward();
    // Every bucket started before finish_gradient_sync, in reverse registration order:
    // 2.bias (3), 2.weight (24), 0.bias (8), 0.weight (32).
    EXPECT_EQ(group->async_numels, (std::vector<int64_t>{3, 24, 8, 32}));
    ddp.finish_gradient_sync();
    EXPECT_EQ(group->async_numels.size(), 4u);
  });
}

// ---- buffers -----------------------------------------------------------------------------

TEST_P(DDPWorld, SyncBuffersMakesBatchNormStatisticsEqual) {
  const int world = GetParam();
  const Tensor x = test::random_tensor({world * 6, 4}, DType::float64, 111);
  std::vector<std::shared_ptr<nn::Sequential>> models;
  for (int r = 0; r < world; ++r) {
    manual_seed(112);
    models.push_back(std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::Linear>(4, 5), std::make_shared<nn::BatchNorm1d>(5), std::make_shared<nn::Linear>(5, 1)}));
    models.back()->to(DType::float64);
  }
  auto buffers_of = [](const nn::Module& m) {
    std::vector<Tensor> out;
    for (auto& [name, t] : m.named_buffers()) out.push_back(t.detach().clone());
    return out;
  };
  std::vector<std::vector<Tensor>> before(world), after(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto& model = models[rank];
    DistributedDataParallel ddp(model, group);
    model->forward(shard(x, rank, 6)).pow(2).mean().backward();
    ddp.finish_gradient_sync();
    before[rank] = buffers_of(*model);
    ddp.sync_buffers();
    after[rank] = buffers_of(*model);
  });
  ASSERT_EQ(before[0].size(), 3u);  // running_mean, running_var, num_batches_tracked
  EXPECT_FALSE(bitwise_equal(before[1], before[0]));  // each rank saw its own data
  for (int r = 0; r < world; ++r) EXPECT_TRUE(bitwise_equal(after[r], before[0])) << "rank " << r;
}

TEST(DDP, SyncParametersRestoresRankZeroWeights) {
  constexpr int world = 2;
  auto models = make_replicas(world, 121);
  std::vector<std::vector<Tensor>> got(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    DistributedDataParallel ddp(models[rank], group);
    {
      NoGradGuard no_grad;
      if (rank == 1)
        for (Tensor p : models[rank]->parameters()) p.add_(1.0);
    }
    ddp.sync_parameters();
    got[rank] = params_of(*models[rank]);
  });
  EXPECT_TRUE(bitwise_equal(got[1], got[0]));
}

INSTANTIATE_TEST_SUITE_P(Ranks, DDPWorld, ::testing::Values(2, 3), [](const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "ranks";
});

}  // namespace
}  // namespace zae::dist
