// Samplers: which samples a DataLoader visits in an epoch, in which order. A DataLoader
// without a sampler visits all samples (shuffled per epoch when options.shuffle); with
// DataLoaderOptions::sampler it visits sampler.indices(epoch, dataset size).
//
// DistributedSampler (PyTorch's torch.utils.data.DistributedSampler): the shard of rank
// `rank` out of `world_size`. Every rank draws the same permutation of all samples for the
// epoch (the DataLoader's own Philox Fisher-Yates order under (seed, epoch), so with one
// rank it equals DataLoader shuffle=true), then either pads it by repeating its first
// samples up to a multiple of world_size (the whole order again, several times if
// world_size > dataset size), or with drop_last cuts it down to one (to nothing when
// dataset size < world_size: every rank gets 0 samples); rank r takes positions r,
// r + world_size, r + 2 world_size, ...  Every rank thus gets the same number of samples
// (and batches: no rank waits in a collective for a batch another rank does not have),
// the ranks' shards together cover every sample once per epoch (plus the pad, or less
// the cut with drop_last), and the order changes every epoch (the Trainer calls
// DataLoader::set_epoch).
// Invariants: indices() is a pure function of (epoch, dataset size) and the sampler's
// fields; 0 <= rank < world_size; every index returned is < dataset size.
#pragma once

#include <cstdint>
#include <vector>

namespace zae {

class Sampler {
 public:
  virtual ~Sampler() = default;
  /// The dataset positions visited in epoch `epoch`, in order.
  virtual std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const = 0;
  /// How many indices() returns for a dataset of this size.
  virtual int64_t size(int64_t dataset_size) const = 0;
};

/// The DataLoader's shuffle: a permutation of 0..n-1 drawn from Philox under (seed, epoch).
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);

class DistributedSampler final : public Sampler {
 public:
  struct Options {
    bool shuffle = true;
    uint64_t seed = 0;       ///< must be the same on every rank
    bool drop_last = false;  ///< false: pad to a multiple of world_size by repeating samples
  };
  DistributedSampler(int rank, int world_size, Options options);
  DistributedSampler(int rank, int world_size) : DistributedSampler(rank, world_size, Options{}) {}

  std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const override;
  int64_t size(int64_t dataset_size) const override;
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const Options& options() const { return options_; }

 private:
  int rank_;
  int world_size_;
  Options options_;
};

}  // namespace zae
