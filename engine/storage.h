// Storage: one allocation on one device, shared by every view of it.
// The version counter lives here so that all views see in-place writes: autograd
// records it when it saves a tensor and refuses to use a tensor modified since.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "engine/allocator.h"

namespace zae {

class StorageImpl {
 public:
  StorageImpl(size_t nbytes, Device device)
      : data_(allocator_for(device).allocate(nbytes)), nbytes_(nbytes), device_(device) {}
  /// Adopts memory allocated elsewhere (e.g. page-locked host memory, io/pinned_memory.h);
  /// `data` must hold at least `nbytes` bytes usable on `device`.
  StorageImpl(DataPtr data, size_t nbytes, Device device) : data_(std::move(data)), nbytes_(nbytes), device_(device) {}
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_.get(); }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  DataPtr data_;
  size_t nbytes_;
  Device device_;
  std::atomic<uint64_t> version_{0};
};

using Storage = std::shared_ptr<StorageImpl>;

inline Storage make_storage(size_t nbytes, Device device) { return std::make_shared<StorageImpl>(nbytes, device); }

}  // namespace zae
