// Generator: a Philox4x32-10 stream position (seed, offset). Each draw reserves a
// range of counter blocks and advances the offset past it, so draws never overlap
// and can be replayed exactly from (seed, offset) on any device.
#pragma once

#include <cstdint>
#include <mutex>

namespace zae {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed, uint64_t offset = 0) : seed_(seed), offset_(offset) {}

  void manual_seed(uint64_t seed);
  uint64_t seed() const;
  uint64_t offset() const;
  void set_offset(uint64_t offset);

  struct Draw {
    uint64_t seed;
    uint64_t offset;  // first counter block of this draw
  };
  /// Reserves `blocks` counter blocks and returns where they start.
  Draw reserve(uint64_t blocks);

 private:
  mutable std::mutex mu_;
  uint64_t seed_;
  uint64_t offset_;
};

/// The process-wide default generator (used when an op is given none).
Generator& default_generator();
/// Seeds the default generator and resets its offset to 0.
void manual_seed(uint64_t seed);

}  // namespace zae
