// DataLoader: batches of a Dataset, one epoch per range-for loop.
//
//   zae::DataLoader loader(dataset, {.batch_size = 64, .shuffle = true, .seed = 1, .num_workers = 2});
//   for (const zae::Batch& batch : loader) { ... batch["image"] ... }
//
// Order. Epoch e visits the samples in order_for_epoch(e): 0..n-1 without shuffle,
// else shuffled_order(n, seed, e) (io/sampler.h), a Fisher-Yates permutation drawn from
// Philox keyed by (seed, e), the same on every machine. With options.sampler the order
// is sampler->indices(e, n) instead (e.g. one rank's shard: DistributedSampler), an
// epoch has sampler->size(n) samples, options.shuffle must be false (shuffling is the
// sampler's job) and every index must be < n (checked: a clear error otherwise).
// Each new iteration (begin()) runs the epoch that set_epoch() named,
// or, when set_epoch() was not called since the last iteration began, the epoch after
// the last one (0 for the first): plain loops give epochs 0, 1, 2, ...
// Batches. Batch b holds the samples at positions [b * batch_size, (b + 1) * batch_size)
// of the epoch's order, collated (default: stack each entry along a new dim 0); the
// last, smaller batch is dropped with drop_last.
// Workers. With num_workers > 0, background threads build whole batches (get + collate
// + pin) ahead of the consumer, batch b on worker b % num_workers, at most
// prefetch_factor * num_workers batches ahead; batches are delivered strictly in order,
// so every num_workers gives the same batches. A worker's exception is rethrown where
// its batch would have been delivered. Leaving a loop (at its end, by break or by an
// exception: when the last iterator of an iteration is destroyed), starting a new
// iteration or destroying the loader stops and joins the workers. Data loading never
// records an autograd graph (workers and collate run under NoGradGuard).
// Resume. state() = {seed, epoch, batches_consumed} names the next batch to deliver;
// a loader given load_state(s) continues with exactly the batches that were left.
// With a sampler, the order depends on the sampler, not on state().seed: resume with
// an equal sampler (same seed, rank and world size).
// Invariants: one thread drives a DataLoader (begin, ++, state, set_epoch); the
// Dataset's get is called from worker threads and must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <vector>

#include "io/batch.h"
#include "io/dataset.h"
#include "io/sampler.h"

namespace zae {

/// Joins samples into a batch. Receives the batch's samples in order.
using CollateFn = std::function<Batch(std::vector<Batch>&& samples)>;

/// Stacks entry k of every sample along a new dim 0 (names and entry count must match).
Batch default_collate(std::vector<Batch>&& samples);

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  /// Last batch smaller than batch_size: dropped when true.
  bool drop_last = false;
  /// With (epoch), determines the shuffle order.
  uint64_t seed = 0;
  /// Background threads building batches; 0 builds them on the calling thread.
  int num_workers = 0;
  /// Copy collated batches into page-locked memory (where CUDA is available; else a no-op).
  bool pin_memory = false;
  /// Batches buffered per worker (workers only).
  int prefetch_factor = 2;
  /// Empty: default_collate.
  CollateFn collate = nullptr;
  /// When set, the samples of epoch e are sampler->indices(e, dataset size), in order
  /// (shuffle must then be false). Null: all samples, shuffled when `shuffle`.
  std::shared_ptr<const Sampler> sampler = nullptr;
};

/// Where a loader stands: the next batch delivered is batch `batches_consumed` of
/// epoch `epoch` under seed `seed`.
struct DataLoaderState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t batches_consumed = 0;
  friend bool operator==(const DataLoaderState&, const DataLoaderState&) = default;
};

namespace detail {
class LoaderRun;
}

class DataLoader {
 public:
  /// An input iterator over one epoch's batches; copies share the same position.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    /// The end iterator.
    Iterator() = default;
    const Batch& operator*() const;
    const Batch* operator->() const { return &**this; }
    /// Moves to the next batch (waiting for a worker if needed); rethrows a worker's error.
    Iterator& operator++();
    /// Equal when both are at the end (or are the same position of the same iteration).
    bool operator==(const Iterator& other) const;

   private:
    friend class DataLoader;
    explicit Iterator(std::shared_ptr<detail::LoaderRun> run) : run_(std::move(run)) {}
    bool at_end() const;
    std::shared_ptr<detail::LoaderRun> run_;
  };

  DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options = {});
  /// Stops and joins the workers of a running iteration.
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts an iteration over the next epoch (see the file comment), stopping any
  /// iteration still running, and returns an iterator at its first batch.
  Iterator begin();
  Iterator end() { return Iterator(); }

  /// Batches per epoch.
  int64_t size() const;
  const Dataset& dataset() const { return *dataset_; }
  /// The dataset, shared (e.g. to build a second loader over it with another sampler).
  std::shared_ptr<Dataset> dataset_ptr() const { return dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  /// The next iteration runs epoch `epoch` (>= 0) from its first batch.
  void set_epoch(int64_t epoch);
  /// The epoch of the running (or most recent) iteration; before any, the next one.
  int64_t epoch() const;
  /// The next iteration starts at batch `count` of its epoch (0 <= count <= size()).
  void skip_batches(int64_t count);

  /// The next batch to deliver: inside an unfinished iteration, {seed, its epoch,
  /// batches delivered so far}; otherwise where the next iteration will start.
  DataLoaderState state() const;
  /// The next iteration runs epoch s.epoch from batch s.batches_consumed under seed
  /// s.seed (the loader adopts it), giving exactly the batches the saved run had left.
  void load_state(const DataLoaderState& s);

  /// The sample order of epoch `epoch` (all samples, or the sampler's, before batching).
  std::vector<int64_t> order_for_epoch(int64_t epoch) const;

 private:
  int64_t samples_per_epoch() const;  // the dataset's size, or the sampler's size for it
  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t next_epoch_ = 0;
  int64_t next_start_ = 0;
  bool explicit_next_ = false;  // set_epoch / skip_batches / load_state since the last begin()
  std::shared_ptr<detail::LoaderRun> current_;
};

}  // namespace zae
