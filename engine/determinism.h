// Deterministic mode: a process-wide switch that makes ops choose run-to-run
// reproducible algorithms where a faster one would depend on thread timing.
//
// What it changes (CUDA; every CPU kernel is deterministic already): scatter_add and the
// accumulating backward passes of gather, index_select and embedding sort their
// indices (a stable radix sort) and sum each output element in index order in one
// thread, which also gives the CPU's bits for float32 / float64; with the mode off they
// use atomicAdd, whose order (and so the rounding of float sums) varies between runs.
// Invariants: off by default; reading and writing it is thread-safe (an atomic flag);
// an op reads it once, when it starts, so a switch mid-op never mixes algorithms.
#pragma once

namespace zae {

/// Turns deterministic mode on or off for the whole process.
void set_deterministic(bool on);
/// Whether deterministic mode is on (default: off).
bool deterministic();

/// Sets deterministic mode for a scope and restores the previous value.
class DeterministicGuard {
 public:
  explicit DeterministicGuard(bool on) : prev_(deterministic()) { set_deterministic(on); }
  ~DeterministicGuard() { set_deterministic(prev_); }
  DeterministicGuard(const DeterministicGuard&) = delete;
  DeterministicGuard& operator=(const DeterministicGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace zae
