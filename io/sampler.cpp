// shuffled_order (the DataLoader's shuffle) and DistributedSampler.
//
// shuffled_order: a Fisher-Yates shuffle of 0..n-1 whose random numbers come from a
// Philox Generator keyed by seed ^ splitmix64(epoch) (splitmix64 spreads consecutive
// epochs over unrelated keys), read as 64-bit words and reduced to [0, i] without
// modulo bias. It depends on nothing but (n, seed, epoch): the same permutation on
// every machine, thread and build. Changing it changes every shuffled run, so its output
// is pinned by tests (tests/test_io_sampler.cpp).
//
// DistributedSampler: with the epoch's order o (shuffled or 0..n-1) and total = size(n) *
// world_size, position k of the padded/cut order is o[k % n] (k >= n only without
// drop_last: the pad repeats the order from its start, the whole order several times
// when world_size > n, as PyTorch does); rank r takes positions r, r + W, ... < total.
// With drop_last and n < world_size every rank gets 0 samples.
#include "io/sampler.h"

#include <numeric>
#include <utility>

#include "engine/error.h"
#include "engine/generator.h"
#include "kernels/philox.h"

namespace zae {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// 64-bit words from a Generator's Philox stream, one counter block (two words) at a time.
class WordStream {
 public:
  explicit WordStream(Generator& gen) : gen_(gen) {}
  uint64_t next() {
    if (used_ == 2) {
      Generator::Draw d = gen_.reserve(1);
      words_ = philox::block(d.seed, d.offset);
      used_ = 0;
    }
    const uint32_t* w = words_.v + 2 * used_++;
    return (static_cast<uint64_t>(w[0]) << 32) | w[1];
  }
  /// Uniform in [0, range) without modulo bias (Lemire's multiply-and-reject).
  uint64_t below(uint64_t range) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * range;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < range) {
      const uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * range;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  Generator& gen_;
  philox::U32x4 words_{};
  int used_ = 2;
};

}  // namespace

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch) {
  ZAE_CHECK(n >= 0, "shuffled_order: the number of samples must be >= 0, got ", n);
  ZAE_CHECK(epoch >= 0, "shuffled_order: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (n < 2) return order;
  Generator gen(seed ^ splitmix64(static_cast<uint64_t>(epoch)));
  WordStream words(gen);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(words.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

DistributedSampler::DistributedSampler(int rank, int world_size, Options options)
    : rank_(rank), world_size_(world_size), options_(options) {
  ZAE_CHECK(world_size >= 1, "DistributedSampler: world_size must be >= 1, got ", world_size);
  ZAE_CHECK(rank >= 0 && rank < world_size, "DistributedSampler: rank ", rank, " is out of range for world_size ",
            world_size, " (expected 0 <= rank < ", world_size, ")");
}

int64_t DistributedSampler::size(int64_t dataset_size) const {
  ZAE_CHECK(dataset_size >= 0, "DistributedSampler: the dataset size must be >= 0, got ", dataset_size);
  const int64_t w = world_size_;
  return options_.drop_last ? dataset_size / w : (dataset_size + w - 1) / w;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch, int64_t dataset_size) const {
  ZAE_CHECK(epoch >= 0, "DistributedSampler: epoch must be >= 0, got ", epoch);
  const int64_t count = size(dataset_size);  // validates dataset_size
  std::vector<int64_t> out;
  if (count == 0) return out;
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = shuffled_order(dataset_size, options_.seed, epoch);
  } else {
    order.resize(static_cast<size_t>(dataset_size));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = rank_ + i * world_size_;  // < count * world_size
    out.push_back(order[static_cast<size_t>(k % dataset_size)]);
  }
  return out;
}

}  // namespace zae
