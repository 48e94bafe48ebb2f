// shuffled_order, DistributedSampler and DataLoader with a sampler: shuffled_order is
// exactly the DataLoader's shuffle (pinned values, so it cannot drift); world 1 equals
// the DataLoader's shuffle; every rank gets the same count, the shards cover every
// sample (plus exactly the pad, or exactly floor(n/W)*W with drop_last), are disjoint
// when n divides, change per epoch and are deterministic; shuffle=false matches
// PyTorch's DistributedSampler (hand-computed); a DataLoader delivers exactly the
// sampler's indices, with drop_last, resume, skip and workers; bad input fails clearly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/sampler.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

using test::expect_throws_with;
using Order = std::vector<int64_t>;
using Batches = std::vector<std::vector<int64_t>>;

// n samples: "x" = int64 scalar i.
std::shared_ptr<TensorDataset> make_dataset(int64_t n) {
  return std::make_shared<TensorDataset>(Batch{{"x", arange(n)}});
}

Batches run_epoch(DataLoader& loader) {
  Batches out;
  for (const Batch& b : loader) out.push_back(b["x"].to_vector<int64_t>());
  return out;
}

Order flatten(const Batches& batches) {
  Order all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

Batches chunk(const Order& order, int64_t bs, bool drop_last) {
  Batches out;
  for (size_t lo = 0; lo < order.size(); lo += static_cast<size_t>(bs)) {
    const size_t hi = std::min(order.size(), lo + static_cast<size_t>(bs));
    if (drop_last && hi - lo < static_cast<size_t>(bs)) break;
    out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(lo), order.begin() + static_cast<std::ptrdiff_t>(hi));
  }
  return out;
}

std::shared_ptr<const Sampler> distributed(int rank, int world, DistributedSampler::Options o) {
  return std::make_shared<const DistributedSampler>(rank, world, o);
}

// ---- shuffled_order ----------------------------------------------------------------------

TEST(ShuffledOrder, PinnedValues) {
  // Recorded from the DataLoader's shuffle before it moved into shuffled_order: changing
  // them changes the sample order of every shuffled run (and of every resumed checkpoint).
  EXPECT_EQ(shuffled_order(10, 0, 0), (Order{9, 3, 7, 5, 0, 8, 1, 2, 4, 6}));
  EXPECT_EQ(shuffled_order(10, 42, 1), (Order{2, 9, 6, 3, 8, 4, 5, 1, 7, 0}));
  EXPECT_EQ(shuffled_order(11, 1, 2), (Order{5, 7, 4, 3, 2, 9, 10, 6, 1, 0, 8}));
  EXPECT_EQ(shuffled_order(5, 1, 0), (Order{4, 1, 3, 2, 0}));
  EXPECT_EQ(shuffled_order(37, 0xFFFFFFFFFFFFFFFFull, 7),
            (Order{6,  14, 26, 31, 27, 32, 16, 23, 3, 4,  17, 13, 35, 33, 1,  22, 18, 2,  30,
                   9,  12, 36, 15, 25, 20, 8,  7,  34, 0, 5,  29, 28, 24, 10, 21, 11, 19}));
  EXPECT_EQ(shuffled_order(0, 3, 0), Order{});
  EXPECT_EQ(shuffled_order(1, 3, 5), Order{0});
}

TEST(ShuffledOrder, EqualsTheDataLoaderShuffle) {
  for (int64_t n : {2, 7, 10, 64}) {
    for (uint64_t seed : {0ull, 1ull, 42ull, 0xDEADBEEFull}) {
      auto ds = make_dataset(n);
      DataLoader loader(ds, {.batch_size = 3, .shuffle = true, .seed = seed});
      for (int64_t epoch : {0, 1, 2, 5}) {
        SCOPED_TRACE("n " + std::to_string(n) + " seed " + std::to_string(seed) + " epoch " + std::to_string(epoch));
        const Order order = shuffled_order(n, seed, epoch);
        EXPECT_EQ(order, loader.order_for_epoch(epoch));
        loader.set_epoch(epoch);
        EXPECT_EQ(flatten(run_epoch(loader)), order);
        Order sorted = order;
        std::sort(sorted.begin(), sorted.end());
        EXPECT_EQ(sorted, arange(n).to_vector<int64_t>()) << "not a permutation";
      }
    }
  }
  EXPECT_NE(shuffled_order(64, 1, 0), shuffled_order(64, 1, 1));
  EXPECT_NE(shuffled_order(64, 1, 0), shuffled_order(64, 2, 0));
  expect_throws_with([] { shuffled_order(-1, 0, 0); }, {"shuffled_order", ">= 0", "-1"});
  expect_throws_with([] { shuffled_order(4, 0, -2); }, {"shuffled_order", "epoch", "-2"});
}

// ---- DistributedSampler --------------------------------------------------------------------

TEST(DistributedSampler, WorldOneEqualsTheDataLoaderShuffle) {
  for (int64_t n : {0, 1, 10, 33}) {
    for (bool drop_last : {false, true}) {
      const DistributedSampler s(0, 1, {.shuffle = true, .seed = 9, .drop_last = drop_last});
      DataLoader plain(make_dataset(n), {.batch_size = 4, .shuffle = true, .seed = 9});
      EXPECT_EQ(s.size(n), n);
      for (int64_t epoch : {0, 1, 3}) EXPECT_EQ(s.indices(epoch, n), plain.order_for_epoch(epoch));
      const DistributedSampler ordered(0, 1, {.shuffle = false, .drop_last = drop_last});
      EXPECT_EQ(ordered.indices(2, n), arange(n).to_vector<int64_t>());
    }
  }
}

TEST(DistributedSampler, ShardsCoverEverySampleWithEqualCounts) {
  for (int world : {2, 3, 4}) {
    for (int64_t n : {10, 11, 12, 1, 0}) {
      for (bool drop_last : {false, true}) {
        for (bool shuffle : {true, false}) {
          SCOPED_TRACE("world " + std::to_string(world) + " n " + std::to_string(n) +
                       (drop_last ? " drop_last" : "") + (shuffle ? " shuffle" : ""));
          const DistributedSampler::Options o{.shuffle = shuffle, .seed = 17, .drop_last = drop_last};
          const int64_t per_rank = drop_last ? n / world : (n + world - 1) / world;
          std::map<int64_t, int> seen;  // sample -> times drawn, over all ranks
          Order global;                 // the epoch's (padded / cut) order, rank-interleaved
          std::vector<Order> shards;
          for (int r = 0; r < world; ++r) {
            const DistributedSampler s(r, world, o);
            EXPECT_EQ(s.size(n), per_rank);
            Order idx = s.indices(0, n);
            ASSERT_EQ(static_cast<int64_t>(idx.size()), per_rank) << "rank " << r;
            EXPECT_EQ(s.indices(0, n), idx) << "not deterministic";
            EXPECT_EQ(DistributedSampler(r, world, o).indices(0, n), idx) << "depends on the object";
            for (int64_t v : idx) {
              EXPECT_TRUE(v >= 0 && v < n) << v;
              ++seen[v];
            }
            shards.push_back(std::move(idx));
          }
          for (int64_t i = 0; i < per_rank; ++i)
            for (int r = 0; r < world; ++r) global.push_back(shards[static_cast<size_t>(r)][static_cast<size_t>(i)]);
          const int64_t total = per_rank * world;
          int64_t duplicates = 0;
          for (const auto& [v, times] : seen) duplicates += times - 1;
          if (drop_last) {
            EXPECT_EQ(static_cast<int64_t>(seen.size()), n / world * world);
            EXPECT_EQ(duplicates, 0);
          } else {
            EXPECT_EQ(static_cast<int64_t>(seen.size()), n) << "a sample is on no rank";
            EXPECT_EQ(duplicates, total - n) << "exactly the pad repeats";
          }
          if (n % world == 0) {
            EXPECT_EQ(duplicates, 0) << "shards overlap";
          }
          // The pad / cut is of one permutation: the global order's first min(n, total)
          // positions are distinct, the rest repeat it from its start.
          const int64_t head = std::min(n, total);
          EXPECT_EQ(static_cast<int64_t>(std::set<int64_t>(global.begin(), global.begin() + head).size()), head);
          for (int64_t k = head; k < total; ++k)
            EXPECT_EQ(global[static_cast<size_t>(k)], global[static_cast<size_t>(k % n)]) << "position " << k;
          if (!shuffle) {
            for (int64_t k = 0; k < total; ++k) EXPECT_EQ(global[static_cast<size_t>(k)], k % n);
          } else if (n >= 10) {
            Order e1;
            for (int r = 0; r < world; ++r) {
              const Order idx = DistributedSampler(r, world, o).indices(1, n);
              e1.insert(e1.end(), idx.begin(), idx.end());
            }
            Order e0;
            for (const Order& s : shards) e0.insert(e0.end(), s.begin(), s.end());
            EXPECT_NE(e0, e1) << "the order did not change between epochs";
            // The shuffled global order is shuffled_order (padded from its start).
            const Order perm = shuffled_order(n, 17, 0);
            for (int64_t k = 0; k < total; ++k)
              EXPECT_EQ(global[static_cast<size_t>(k)], perm[static_cast<size_t>(k % n)]);
          }
        }
      }
    }
  }
}

TEST(DistributedSampler, NoShuffleIsRankStrided) {
  for (int r = 0; r < 4; ++r) {
    const DistributedSampler s(r, 4, {.shuffle = false});
    EXPECT_EQ(s.indices(0, 12), (Order{r, r + 4, r + 8}));
    EXPECT_EQ(s.indices(5, 12), (Order{r, r + 4, r + 8})) << "no shuffle: the same every epoch";
  }
}

// torch.utils.data.DistributedSampler(range(n), num_replicas=W, rank=r, shuffle=False,
// drop_last=d): pad with indices[:pad] (the list repeated when pad > n) or cut to
// floor(n/W)*W, then indices[r:total:W]. Expectations computed by hand from that rule.
TEST(DistributedSampler, MatchesPyTorchWithoutShuffle) {
  struct Case {
    int64_t n;
    int world;
    bool drop_last;
    std::vector<Order> ranks;
  };
  const std::vector<Case> cases = {
      {10, 3, false, {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}},  // [0..9, 0, 1]
      {10, 3, true, {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}},            // [0..8]
      {3, 2, false, {{0, 2}, {1, 0}}},                             // [0, 1, 2, 0]
      {7, 4, false, {{0, 4}, {1, 5}, {2, 6}, {3, 0}}},             // [0..6, 0]
      {2, 5, false, {{0}, {1}, {0}, {1}, {0}}},                    // [0, 1] + [0, 1, 0]
      {1, 4, false, {{0}, {0}, {0}, {0}}},                         // [0] + [0, 0, 0]
      {2, 5, true, {{}, {}, {}, {}, {}}},                          // num_samples 0
      {0, 3, false, {{}, {}, {}}},
  };
  for (const Case& c : cases) {
    for (int r = 0; r < c.world; ++r) {
      SCOPED_TRACE("n " + std::to_string(c.n) + " world " + std::to_string(c.world) + " rank " + std::to_string(r) +
                   (c.drop_last ? " drop_last" : ""));
      const DistributedSampler s(r, c.world, {.shuffle = false, .drop_last = c.drop_last});
      EXPECT_EQ(s.indices(0, c.n), c.ranks[static_cast<size_t>(r)]);
      EXPECT_EQ(s.size(c.n), static_cast<int64_t>(c.ranks[static_cast<size_t>(r)].size()));
    }
  }
}

TEST(DistributedSampler, RejectsBadInput) {
  expect_throws_with([] { DistributedSampler(0, 0); }, {"DistributedSampler", "world_size must be >= 1, got 0"});
  expect_throws_with([] { DistributedSampler(0, -3); }, {"world_size must be >= 1, got -3"});
  expect_throws_with([] { DistributedSampler(-1, 2); }, {"rank -1", "world_size 2"});
  expect_throws_with([] { DistributedSampler(2, 2); }, {"rank 2", "out of range", "world_size 2"});
  const DistributedSampler s(1, 2);
  expect_throws_with([&] { s.size(-5); }, {"DistributedSampler", "dataset size", "-5"});
  expect_throws_with([&] { s.indices(0, -5); }, {"dataset size", "-5"});
  expect_throws_with([&] { s.indices(-1, 4); }, {"epoch", "-1"});
  EXPECT_EQ(s.rank(), 1);
  EXPECT_EQ(s.world_size(), 2);
  EXPECT_TRUE(s.options().shuffle);
}

// ---- DataLoader with a sampler ---------------------------------------------------------------

TEST(DataLoaderWithSampler, DeliversExactlyTheSamplersIndices) {
  auto ds = make_dataset(23);
  for (int world : {1, 3}) {
    for (bool sampler_drop : {false, true}) {
      for (bool loader_drop : {false, true}) {
        std::set<int64_t> batch_counts;
        for (int r = 0; r < world; ++r) {
          SCOPED_TRACE("world " + std::to_string(world) + " rank " + std::to_string(r) +
                       (sampler_drop ? " sampler drop_last" : "") + (loader_drop ? " loader drop_last" : ""));
          auto s = distributed(r, world, {.seed = 4, .drop_last = sampler_drop});
          DataLoader loader(ds, {.batch_size = 3, .drop_last = loader_drop, .sampler = s});
          const int64_t m = s->size(23);
          EXPECT_EQ(loader.size(), loader_drop ? m / 3 : (m + 2) / 3);
          batch_counts.insert(loader.size());
          for (int64_t epoch : {0, 1}) {  // auto-increment
            EXPECT_EQ(loader.order_for_epoch(epoch), s->indices(epoch, 23));
            const Batches got = run_epoch(loader);
            EXPECT_EQ(got, chunk(s->indices(epoch, 23), 3, loader_drop));
            EXPECT_EQ(static_cast<int64_t>(got.size()), loader.size());
          }
          loader.set_epoch(7);
          EXPECT_EQ(run_epoch(loader), chunk(s->indices(7, 23), 3, loader_drop));
        }
        EXPECT_EQ(batch_counts.size(), 1u) << "ranks disagree on the batch count";
      }
    }
  }
  // An empty shard: no batches, no error.
  DataLoader empty(make_dataset(2), {.batch_size = 2, .sampler = distributed(2, 3, {.drop_last = true})});
  EXPECT_EQ(empty.size(), 0);
  EXPECT_TRUE(run_epoch(empty).empty());
}

TEST(DataLoaderWithSampler, WorkersGiveTheSameBatches) {
  auto ds = make_dataset(41);
  auto s = distributed(1, 3, {.seed = 11});
  DataLoader ref(ds, {.batch_size = 4, .sampler = s});
  const Batches r0 = run_epoch(ref), r1 = run_epoch(ref);
  DataLoader w(ds, {.batch_size = 4, .num_workers = 2, .sampler = s});
  EXPECT_EQ(run_epoch(w), r0);
  EXPECT_EQ(run_epoch(w), r1);
  EXPECT_EQ(flatten(r0), s->indices(0, 41));
}

TEST(DataLoaderWithSampler, ResumeMidEpochGivesTheRemainingBatches) {
  auto ds = make_dataset(50);
  for (int workers : {0, 2}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    auto s = distributed(0, 2, {.seed = 3});  // 25 samples per rank: 7 batches of 4 (last 1)
    const DataLoaderOptions opts{.batch_size = 4, .seed = 5, .num_workers = workers, .sampler = s};
    const Batches full = chunk(s->indices(1, 50), 4, false);
    ASSERT_EQ(full.size(), 7u);

    DataLoader original(ds, opts);
    run_epoch(original);
    DataLoaderState saved;
    int seen = 0;
    for (const Batch& b : original) {  // epoch 1
      EXPECT_EQ(b["x"].to_vector<int64_t>(), full[static_cast<size_t>(seen)]);
      if (++seen == 3) {
        saved = original.state();
        break;
      }
    }
    EXPECT_EQ(saved, (DataLoaderState{5, 1, 3}));

    DataLoader resumed(ds, opts);
    resumed.load_state(saved);
    EXPECT_EQ(run_epoch(resumed), Batches(full.begin() + 3, full.end()));
    EXPECT_EQ(resumed.state(), (DataLoaderState{5, 2, 0}));
    EXPECT_EQ(run_epoch(resumed), chunk(s->indices(2, 50), 4, false));

    DataLoader skipping(ds, opts);
    skipping.set_epoch(1);
    skipping.skip_batches(5);
    EXPECT_EQ(run_epoch(skipping), Batches(full.begin() + 5, full.end()));
    skipping.load_state({5, 1, 8});
    expect_throws_with([&] { skipping.begin(); }, {"cannot start epoch 1 at batch 8", "only 7 batches", "25 sampled"});
  }
}

TEST(DataLoaderWithSampler, DatasetPtrBuildsASecondLoader) {
  auto ds = make_dataset(9);
  DataLoader plain(ds, {.batch_size = 2, .shuffle = true});
  EXPECT_EQ(plain.dataset_ptr(), ds);
  EXPECT_EQ(&plain.dataset(), ds.get());
  DataLoaderOptions o = plain.options();
  o.shuffle = false;
  o.sampler = distributed(1, 2, {.seed = o.seed});
  DataLoader shard(plain.dataset_ptr(), o);
  EXPECT_EQ(shard.size(), 3);  // 5 samples per rank, batches of 2
  EXPECT_EQ(flatten(run_epoch(shard)), o.sampler->indices(0, 9));
}

// A custom sampler returning a fixed list (and claiming a size).
class FixedSampler final : public Sampler {
 public:
  FixedSampler(Order order, int64_t claimed) : order_(std::move(order)), claimed_(claimed) {}
  Order indices(int64_t, int64_t) const override { return order_; }
  int64_t size(int64_t) const override { return claimed_; }

 private:
  Order order_;
  int64_t claimed_;
};

TEST(DataLoaderWithSampler, RejectsBadSamplersAndShuffle) {
  auto ds = make_dataset(5);
  expect_throws_with([&] { DataLoader(ds, {.shuffle = true, .sampler = distributed(0, 1, {})}); },
                     {"shuffle must be false", "shuffle is the sampler's job"});
  DataLoader high(ds, {.batch_size = 2, .sampler = std::make_shared<FixedSampler>(Order{0, 4, 5, 1}, 4)});
  expect_throws_with([&] { high.begin(); }, {"sampler returned index 5", "position 2", "dataset of 5 samples"});
  DataLoader negative(ds, {.sampler = std::make_shared<FixedSampler>(Order{-1}, 1)});
  expect_throws_with([&] { negative.order_for_epoch(0); }, {"sampler returned index -1"});
  DataLoader mismatch(ds, {.sampler = std::make_shared<FixedSampler>(Order{0, 1}, 3)});
  expect_throws_with([&] { mismatch.begin(); }, {"sampler returned 2 indices", "size() is 3"});
  DataLoader bad_size(ds, {.sampler = std::make_shared<FixedSampler>(Order{}, -2)});
  expect_throws_with([&] { bad_size.size(); }, {"sampler reports a negative size -2"});
  // A custom sampler may repeat and skip samples.
  DataLoader custom(ds, {.batch_size = 2, .sampler = std::make_shared<FixedSampler>(Order{4, 4, 0}, 3)});
  EXPECT_EQ(run_epoch(custom), (Batches{{4, 4}, {0}}));
}

}  // namespace
}  // namespace zae
