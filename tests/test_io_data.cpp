// Batch, TensorDataset, default_collate and DataLoader: every sample exactly once
// per epoch, deterministic per-(seed, epoch) shuffles, workers giving the same
// batches as no workers, clean shutdown on early exit, worker errors reaching the
// caller, custom collate, and exact mid-epoch resume from state().
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/pinned_memory.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

using test::expect_throws_with;

// n samples: "x" = int64 scalar i, "y" = float32 (2,) {i, -i}.
std::shared_ptr<TensorDataset> make_dataset(int64_t n) {
  Tensor x = arange(n);
  Tensor y = stack({x.to(DType::float32), -x.to(DType::float32)}, 1);
  return std::make_shared<TensorDataset>(Batch{{"x", x}, {"y", y}});
}

// Every batch's "x" values, batch by batch, over one loop.
std::vector<std::vector<int64_t>> run_epoch(DataLoader& loader) {
  std::vector<std::vector<int64_t>> out;
  for (const Batch& b : loader) out.push_back(b["x"].to_vector<int64_t>());
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

// A dataset that sleeps a little per sample (so workers finish out of order), can
// throw at one index, and counts its calls.
class SlowDataset : public Dataset {
 public:
  SlowDataset(int64_t n, int64_t fail_at = -1, int sleep_us = 0) : n_(n), fail_at_(fail_at), sleep_us_(sleep_us) {}
  int64_t size() const override { return n_; }
  Batch get(int64_t index) const override {
    calls_.fetch_add(1);
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_ * (1 + (index * 7) % 5)));
    if (index == fail_at_) throw std::runtime_error("boom at " + std::to_string(index));
    return Batch{{"x", scalar_tensor(static_cast<double>(index), {.dtype = DType::int64})}};
  }
  int64_t calls() const { return calls_.load(); }

 private:
  int64_t n_, fail_at_;
  int sleep_us_;
  mutable std::atomic<int64_t> calls_{0};
};

// ---- Batch ---------------------------------------------------------------------------

TEST(Batch, NamedAndPositionalAccess) {
  Tensor a = zeros({2, 3}), b = ones({2}, {.dtype = DType::int64});
  Batch named{{"x", a}, {"y", b}};
  EXPECT_EQ(named.size(), 2u);
  EXPECT_EQ(named.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(named["x"].is_same(a));
  EXPECT_TRUE(named[1].is_same(b));
  EXPECT_TRUE(named[-1].is_same(b));
  EXPECT_TRUE(named[int64_t{0}].is_same(a));
  EXPECT_TRUE(named[size_t{0}].is_same(a));
  EXPECT_TRUE(named.contains("y"));
  EXPECT_FALSE(named.contains("z"));
  EXPECT_EQ(named.str(), "Batch(x: [2, 3] float32 cpu, y: [2] int64 cpu)");
  expect_throws_with([&] { (void)named["label"]; }, {"no entry named 'label'", "'x', 'y'"});
  expect_throws_with([&] { (void)named[2]; }, {"index 2 is out of range", "2 entries"});
  expect_throws_with([&] { named.add("x", a); }, {"'x' already exists"});

  Batch positional{a, b};
  EXPECT_EQ(positional.names(), (std::vector<std::string>{"", ""}));
  EXPECT_TRUE(positional[0].is_same(a));
  expect_throws_with([&] { (void)positional["x"]; }, {"no entry named 'x'", "#0, #1"});
  positional[0] = b;  // mutable access
  EXPECT_TRUE(positional[0].is_same(b));

  Batch moved = named.to(Device::cpu());
  EXPECT_TRUE(moved["x"].is_same(a));  // already there: same handle
  Batch pinned = named.pin_memory();
  EXPECT_EQ(pinned["x"].shape(), a.shape());
  EXPECT_EQ(is_pinned(pinned["x"]), pinned_memory_available());
}

// ---- TensorDataset / default_collate ----------------------------------------------------

TEST(TensorDataset, RowsAndErrors) {
  auto ds = make_dataset(5);
  EXPECT_EQ(ds->size(), 5);
  Batch s = ds->get(3);
  EXPECT_EQ(s["x"].dim(), 0);
  EXPECT_EQ(s["x"].item(), 3);
  test::expect_close(s["y"], {3, -3});
  expect_throws_with([&] { ds->get(5); }, {"TensorDataset", "index 5", "5 samples"});
  expect_throws_with([] { TensorDataset({{"x", zeros({3, 2})}, {"y", zeros({4})}}); },
                     {"same size in dim 0", "'x': [3, 2]", "'y': [4]"});
  expect_throws_with([] { TensorDataset({zeros({3}), scalar_tensor(1.0)}); }, {"#1", "zero-dimensional"});
  expect_throws_with([] { TensorDataset(Batch{}); }, {"at least one tensor"});
  TensorDataset positional({zeros({4, 2}), arange(4)});
  EXPECT_EQ(positional.get(2)[1].item(), 2);
}

TEST(DefaultCollate, StacksEachEntryAndNamesMismatches) {
  std::vector<Batch> samples = {Batch{{"a", tensor({1.0, 2.0})}, {"l", scalar_tensor(3, {.dtype = DType::int64})}},
                                Batch{{"a", tensor({4.0, 5.0})}, {"l", scalar_tensor(6, {.dtype = DType::int64})}}};
  Batch b = default_collate(std::move(samples));
  EXPECT_EQ(b.names(), (std::vector<std::string>{"a", "l"}));
  EXPECT_EQ(b["a"].shape(), Shape({2, 2}));
  test::expect_close(b["a"], {1, 2, 4, 5});
  EXPECT_EQ(b["l"].shape(), Shape({2}));
  EXPECT_EQ(b["l"].to_vector<int64_t>(), (std::vector<int64_t>{3, 6}));
  // Non-contiguous samples take the stack path and give the same result.
  Tensor m = arange(6, {.dtype = DType::float32}).view({2, 3});
  Batch t = default_collate({Batch{m.t()}, Batch{m.t()}});
  EXPECT_EQ(t[0].shape(), Shape({2, 3, 2}));
  test::expect_close(t[0], {0, 3, 1, 4, 2, 5, 0, 3, 1, 4, 2, 5});

  expect_throws_with([] { default_collate({Batch{{"a", zeros({2})}}, Batch{{"a", zeros({3})}}}); },
                     {"entry 'a' of sample 1 has shape [3]", "sample 0 has [2]", "custom collate"});
  expect_throws_with([] { default_collate({Batch{{"a", zeros({2})}}, Batch{{"b", zeros({2})}}}); },
                     {"entry 0 of sample 1 is 'b'", "sample 0 it is 'a'"});
  expect_throws_with([] { default_collate({Batch{zeros({2})}, Batch{zeros({2}), zeros({2})}}); },
                     {"sample 1 has 2 entries", "sample 0 has 1"});
  expect_throws_with([] { default_collate({Batch{zeros({2})}, Batch{zeros({2}, {.dtype = DType::float64})}}); },
                     {"dtype float64", "sample 0 has float32"});
}

// ---- DataLoader: coverage and order -----------------------------------------------------

TEST(DataLoader, EverySampleExactlyOncePerEpoch) {
  for (int64_t n : {1, 23}) {
    for (int64_t bs : {1, 4, 5, 23, 30}) {
      for (bool drop_last : {false, true}) {
        for (bool shuffle : {false, true}) {
          SCOPED_TRACE("n " + std::to_string(n) + " bs " + std::to_string(bs) + (drop_last ? " drop_last" : "") +
                       (shuffle ? " shuffle" : ""));
          auto ds = make_dataset(n);
          DataLoader loader(ds, {.batch_size = bs, .shuffle = shuffle, .drop_last = drop_last, .seed = 7});
          const int64_t expected_batches = drop_last ? n / bs : (n + bs - 1) / bs;
          EXPECT_EQ(loader.size(), expected_batches);
          for (int epoch = 0; epoch < 2; ++epoch) {
            std::vector<std::vector<int64_t>> batches;
            for (const Batch& b : loader) {
              const auto x = b["x"].to_vector<int64_t>();
              const auto y = b["y"].to_vector<double>();
              EXPECT_EQ(b["y"].shape(), Shape({static_cast<int64_t>(x.size()), 2}));
              for (size_t i = 0; i < x.size(); ++i) {  // rows stay together
                EXPECT_EQ(y[2 * i], static_cast<double>(x[i]));
                EXPECT_EQ(y[2 * i + 1], -static_cast<double>(x[i]));
              }
              batches.push_back(x);
            }
            ASSERT_EQ(static_cast<int64_t>(batches.size()), expected_batches);
            for (size_t i = 0; i < batches.size(); ++i) {
              const bool last = i + 1 == batches.size();
              if (!last || drop_last || n % bs == 0) EXPECT_EQ(static_cast<int64_t>(batches[i].size()), bs);
              else EXPECT_EQ(static_cast<int64_t>(batches[i].size()), n % bs);
            }
            std::vector<int64_t> all = flatten(batches);
            std::set<int64_t> unique(all.begin(), all.end());
            EXPECT_EQ(unique.size(), all.size()) << "a sample was repeated";
            EXPECT_EQ(static_cast<int64_t>(all.size()), drop_last ? n / bs * bs : n);
            for (int64_t v : all) EXPECT_TRUE(v >= 0 && v < n);
          }
        }
      }
    }
  }
}

TEST(DataLoader, NoShuffleIsSequential) {
  DataLoader loader(make_dataset(10), {.batch_size = 4});
  EXPECT_EQ(run_epoch(loader), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_EQ(run_epoch(loader), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
}

TEST(DataLoader, ShuffleIsAFunctionOfSeedAndEpoch) {
  auto ds = make_dataset(50);
  DataLoader a(ds, {.batch_size = 8, .shuffle = true, .seed = 123});
  DataLoader b(ds, {.batch_size = 8, .shuffle = true, .seed = 123});
  DataLoader c(ds, {.batch_size = 8, .shuffle = true, .seed = 124});
  const auto a0 = run_epoch(a), a1 = run_epoch(a), a2 = run_epoch(a);  // epochs 0, 1, 2 (auto-increment)
  EXPECT_EQ(a.epoch(), 2);
  EXPECT_NE(a0, a1);
  EXPECT_NE(a1, a2);
  std::vector<int64_t> sorted = flatten(a0);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(flatten(a0), sorted) << "epoch 0 was not shuffled";
  EXPECT_EQ(run_epoch(b), a0);  // same seed, same epochs
  EXPECT_EQ(run_epoch(b), a1);
  EXPECT_NE(run_epoch(c), a0);  // another seed
  b.set_epoch(1);               // explicit epochs replay
  EXPECT_EQ(run_epoch(b), a1);
  b.set_epoch(1);
  EXPECT_EQ(run_epoch(b), a1);
  EXPECT_EQ(run_epoch(b), a2);  // and auto-increment continues from there
  EXPECT_EQ(flatten(a1), a.order_for_epoch(1));
  // A pinned reference value, so the order cannot drift silently across versions.
  DataLoader d(make_dataset(10), {.batch_size = 10, .shuffle = true, .seed = 0});
  const std::vector<int64_t> order = d.order_for_epoch(0);
  EXPECT_EQ(order, flatten(run_epoch(d)));
  std::vector<int64_t> check = order;
  std::sort(check.begin(), check.end());
  EXPECT_EQ(check, arange(10).to_vector<int64_t>());
}

// ---- workers -----------------------------------------------------------------------------

TEST(DataLoader, WorkersGiveTheSameBatchesAsNoWorkers) {
  auto ds = make_dataset(103);
  auto slow = std::make_shared<SlowDataset>(61, -1, 20);
  for (bool drop_last : {false, true}) {
    DataLoader ref(ds, {.batch_size = 7, .shuffle = true, .drop_last = drop_last, .seed = 5});
    DataLoader slow_ref(slow, {.batch_size = 3, .shuffle = true, .seed = 9});
    const auto r0 = run_epoch(ref), r1 = run_epoch(ref);
    const auto s0 = run_epoch(slow_ref);
    for (int workers : {1, 2, 4}) {
      for (int prefetch : {1, 2}) {
        SCOPED_TRACE("workers " + std::to_string(workers) + " prefetch " + std::to_string(prefetch));
        DataLoader w(ds, {.batch_size = 7, .shuffle = true, .drop_last = drop_last, .seed = 5,
                          .num_workers = workers, .pin_memory = true, .prefetch_factor = prefetch});
        EXPECT_EQ(run_epoch(w), r0);
        EXPECT_EQ(run_epoch(w), r1);
        // Uneven per-sample delays: workers finish out of order, delivery stays in order.
        DataLoader sw(slow, {.batch_size = 3, .shuffle = true, .seed = 9, .num_workers = workers,
                             .prefetch_factor = prefetch});
        EXPECT_EQ(run_epoch(sw), s0);
      }
    }
  }
  // Whole batches compare equal tensor by tensor, "y" included.
  DataLoader a(ds, {.batch_size = 10, .shuffle = true, .seed = 1});
  DataLoader b(ds, {.batch_size = 10, .shuffle = true, .seed = 1, .num_workers = 3});
  auto ia = a.begin();
  for (const Batch& bb : b) {
    ASSERT_NE(ia, a.end());
    EXPECT_EQ(ia->names(), bb.names());
    EXPECT_EQ((*ia)["y"].to_vector<float>(), bb["y"].to_vector<float>());
    ++ia;
  }
  EXPECT_EQ(ia, a.end());
}

TEST(DataLoader, EarlyBreakAndDestructionStopTheWorkers) {
  auto slow = std::make_shared<SlowDataset>(400, -1, 200);
  const auto start = std::chrono::steady_clock::now();
  {
    DataLoader loader(slow, {.batch_size = 4, .num_workers = 4, .prefetch_factor = 2});
    int seen = 0;
    for (const Batch& b : loader) {
      EXPECT_EQ(b["x"].size(0), 4);
      if (++seen == 2) break;
    }
    // Bounded prefetch: at most prefetch_factor * num_workers batches ahead of the
    // consumer; and leaving the loop joined the workers, so the count stays put.
    const int64_t after_break = slow->calls();
    EXPECT_LE(after_break, (2 + 8) * 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(slow->calls(), after_break) << "a worker kept running after the loop was left";
    EXPECT_EQ(loader.state(), (DataLoaderState{0, 0, 2}));  // the position survives the break
    // A new loop after the break starts cleanly (next epoch, from its first batch).
    auto it = loader.begin();
    EXPECT_EQ((*it)["x"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
    EXPECT_EQ(loader.epoch(), 1);
  }  // destroyed mid-iteration: joins its workers
  const int64_t calls = slow->calls();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(slow->calls(), calls) << "a worker kept running after the loader was destroyed";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0);
}

TEST(DataLoader, AnIteratorOutlivingItsIterationFailsClearly) {
  DataLoader loader(make_dataset(20), {.batch_size = 2, .num_workers = 2});
  auto first = loader.begin();
  auto second = loader.begin();  // stops the first iteration
  EXPECT_EQ((*second)["x"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  expect_throws_with([&] { ++first; }, {"iteration was stopped", "new iteration began"});
}

TEST(DataLoader, AWorkerExceptionReachesTheCallerWithItsMessage) {
  auto failing = std::make_shared<SlowDataset>(60, 37);
  for (int workers : {0, 2, 3}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    DataLoader loader(failing, {.batch_size = 4, .num_workers = workers});
    int delivered = 0;
    std::string message;
    try {
      for (const Batch& b : loader) {
        EXPECT_EQ(b["x"].to_vector<int64_t>()[0], 4 * delivered);
        ++delivered;
      }
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_EQ(delivered, 9);  // batches 0..8 arrive; batch 9 holds sample 37
    // Batch 9 runs on worker 9 % workers.
    const std::string who = workers == 0 ? "DataLoader failed" : "DataLoader worker " + std::to_string(9 % workers) + " failed";
    EXPECT_NE(message.find(who + " on sample 37: boom at 37"), std::string::npos) << message;
    // The loader stays usable: the next epoch runs (and fails at the same place).
    auto it = loader.begin();
    EXPECT_EQ((*it)["x"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
    // A resumed iteration keeps the batch-to-worker assignment (batch b on worker b % W).
    loader.load_state({0, 0, 5});
    delivered = 0;
    message.clear();
    try {
      for (const Batch& b : loader) {
        EXPECT_EQ(b["x"].to_vector<int64_t>()[0], 4 * (5 + delivered));
        ++delivered;
      }
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_EQ(delivered, 4);
    EXPECT_NE(message.find(who + " on sample 37"), std::string::npos) << message;
  }
}

// ---- collate -----------------------------------------------------------------------------

TEST(DataLoader, CustomCollate) {
  auto collate = [](std::vector<Batch>&& samples) {
    int64_t sum = 0;
    for (const Batch& s : samples) sum += s["x"].item<int64_t>();
    return Batch{{"sum", scalar_tensor(static_cast<double>(sum), {.dtype = DType::int64})},
                 {"count", scalar_tensor(static_cast<double>(samples.size()), {.dtype = DType::int64})}};
  };
  for (int workers : {0, 2}) {
    DataLoader loader(make_dataset(10), {.batch_size = 4, .num_workers = workers, .collate = collate});
    std::vector<int64_t> sums, counts;
    for (const Batch& b : loader) {
      sums.push_back(b["sum"].item<int64_t>());
      counts.push_back(b["count"].item<int64_t>());
    }
    EXPECT_EQ(sums, (std::vector<int64_t>{6, 22, 17}));
    EXPECT_EQ(counts, (std::vector<int64_t>{4, 4, 2}));
  }
  DataLoader bad(make_dataset(10), {.batch_size = 4, .num_workers = 1,
                                    .collate = [](std::vector<Batch>&&) -> Batch { throw std::runtime_error("nope"); }});
  expect_throws_with([&] { bad.begin(); }, {"DataLoader worker 0 failed collating batch 0", "nope"});
}

// ---- resume ------------------------------------------------------------------------------

TEST(DataLoader, ResumeMidEpochGivesTheSameRemainingBatches) {
  auto ds = make_dataset(37);
  for (int workers : {0, 2}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    const DataLoaderOptions opts{.batch_size = 5, .shuffle = true, .seed = 42, .num_workers = workers};
    DataLoader reference(ds, opts);
    reference.set_epoch(1);
    const auto full = run_epoch(reference);

    DataLoader original(ds, opts);
    EXPECT_EQ(original.state(), (DataLoaderState{42, 0, 0}));
    run_epoch(original);
    EXPECT_EQ(original.state(), (DataLoaderState{42, 1, 0}));  // a finished epoch points at the next one
    DataLoaderState saved;
    int seen = 0;
    for (const Batch& b : original) {
      EXPECT_EQ(b["x"].to_vector<int64_t>(), full[static_cast<size_t>(seen)]);
      if (++seen == 3) {
        saved = original.state();  // inside the body of batch 2: 3 consumed
        break;
      }
    }
    EXPECT_EQ(saved, (DataLoaderState{42, 1, 3}));
    EXPECT_EQ(original.state(), saved);  // an unfinished loop keeps its position

    DataLoader resumed(ds, {.batch_size = 5, .shuffle = true, .seed = 999, .num_workers = workers});
    resumed.load_state(saved);  // adopts seed 42
    EXPECT_EQ(resumed.state(), saved);
    const auto rest = run_epoch(resumed);
    EXPECT_EQ(rest, std::vector<std::vector<int64_t>>(full.begin() + 3, full.end()));
    EXPECT_EQ(resumed.state(), (DataLoaderState{42, 2, 0}));
    reference.set_epoch(2);
    EXPECT_EQ(run_epoch(resumed), run_epoch(reference));  // and the following epoch matches too

    DataLoader skipping(ds, opts);
    skipping.set_epoch(1);
    skipping.skip_batches(6);
    EXPECT_EQ(run_epoch(skipping), std::vector<std::vector<int64_t>>(full.begin() + 6, full.end()));
    skipping.load_state({42, 1, 8});  // exactly at the end: an empty loop
    EXPECT_TRUE(run_epoch(skipping).empty());
    skipping.load_state({42, 1, 9});
    expect_throws_with([&] { skipping.begin(); }, {"cannot start epoch 1 at batch 9", "only 8 batches"});
  }
}

TEST(DataLoader, RejectsBadOptions) {
  auto ds = make_dataset(4);
  expect_throws_with([] { DataLoader(nullptr); }, {"dataset is null"});
  expect_throws_with([&] { DataLoader(ds, {.batch_size = 0}); }, {"batch_size must be >= 1, got 0"});
  expect_throws_with([&] { DataLoader(ds, {.num_workers = -1}); }, {"num_workers must be >= 0"});
  expect_throws_with([&] { DataLoader(ds, {.num_workers = 1, .prefetch_factor = 0}); }, {"prefetch_factor"});
  DataLoader ok(ds);
  expect_throws_with([&] { ok.set_epoch(-1); }, {"set_epoch", ">= 0"});
  EXPECT_EQ(ok.size(), 4);
}

}  // namespace
}  // namespace zae
