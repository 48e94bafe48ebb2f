// Batch: an ordered collection of tensors, each with an optional name: the C++
// form of the tuple or dict a Python data pipeline yields. One Dataset sample and
// one collated DataLoader batch are both Batches.
// Invariants: entries keep their insertion order; a non-empty name appears at most
// once; unnamed entries (name "") are reachable by position only. Copying a Batch
// copies tensor handles, not data.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace zae {

class Batch {
 public:
  /// One named (or unnamed: name "") tensor.
  struct Entry {
    std::string name;
    Tensor tensor;
  };

  Batch() = default;
  /// Named entries, in order: Batch{{"x", x}, {"y", y}}.
  Batch(std::initializer_list<std::pair<std::string, Tensor>> named);
  /// Unnamed (positional) entries, in order: Batch{x, y}.
  Batch(std::initializer_list<Tensor> positional);
  explicit Batch(std::vector<Tensor> positional);
  explicit Batch(std::vector<std::pair<std::string, Tensor>> named);

  /// Appends a named entry; a duplicate non-empty name is an error.
  Batch& add(std::string name, Tensor tensor);
  /// Appends an unnamed entry.
  Batch& add(Tensor tensor);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool contains(std::string_view name) const;
  /// Position of `name`, or -1.
  int64_t index_of(std::string_view name) const;

  /// The tensor at `index` (negative counts from the end, as in Python); out of range
  /// is an error naming the entries that exist.
  template <std::integral I>
  const Tensor& operator[](I index) const {
    return entry_at(static_cast<int64_t>(index)).tensor;
  }
  template <std::integral I>
  Tensor& operator[](I index) {
    return const_cast<Entry&>(entry_at(static_cast<int64_t>(index))).tensor;
  }
  /// The tensor called `name`; a missing name is an error naming the entries that exist.
  const Tensor& operator[](std::string_view name) const;
  Tensor& operator[](std::string_view name);
  const Tensor& operator[](const char* name) const { return (*this)[std::string_view(name)]; }
  Tensor& operator[](const char* name) { return (*this)[std::string_view(name)]; }
  const Tensor& at(int64_t index) const { return entry_at(index).tensor; }
  const Tensor& at(std::string_view name) const { return (*this)[name]; }

  /// Names in order ("" for unnamed entries).
  std::vector<std::string> names() const;
  /// Tensors in order.
  std::vector<Tensor> tensors() const;
  const std::vector<Entry>& entries() const { return entries_; }

  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

  /// Every tensor moved to `device` (handles already there are kept). With non_blocking,
  /// pinned host tensors go to a CUDA device asynchronously (io/pinned_memory.h); other
  /// copies are synchronous.
  Batch to(Device device, bool non_blocking = false) const;
  /// Every tensor copied into page-locked host memory where CUDA is available (else unchanged).
  Batch pin_memory() const;

  /// "Batch(x: [4, 3] float32 cpu, #1: [4] int64 cpu)" (unnamed entries as #position).
  std::string str() const;

 private:
  const Entry& entry_at(int64_t index) const;
  /// "'x', 'y', #2" for error messages.
  std::string describe_entries() const;
  std::vector<Entry> entries_;
};

std::ostream& operator<<(std::ostream& os, const Batch& b);

}  // namespace zae
