// Allocator interface: every byte of tensor storage comes through one of these.
// CPU memory is 64-byte aligned (cache line, AVX-512 vector). The CUDA allocator
// (engine/cuda/) serves Device::cuda(i). Allocators outlive every allocation.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/device.h"

namespace zae {

/// Owning pointer to raw bytes; the deleter returns them to their allocator.
using DataPtr = std::unique_ptr<void, void (*)(void*)>;

class Allocator {
 public:
  virtual ~Allocator() = default;
  /// `bytes` may be 0 (returns a valid, possibly null, pointer that must not be dereferenced).
  virtual DataPtr allocate(size_t bytes) = 0;
};

inline constexpr size_t kCpuAlignment = 64;

/// The process-wide allocator for a device (the CUDA one fails clearly where CUDA is absent).
Allocator& allocator_for(Device d);

/// Copies `bytes` from src (on src_dev) to dst (on dst_dev); synchronous on return.
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);

}  // namespace zae
