// Page-locked ("pinned") host memory for the data pipeline: the DataLoader copies
// collated batches into it so that host-to-device copies can run asynchronously.
// Where the build has no CUDA backend or no device is present, pinning is a no-op
// and every function here falls back to ordinary CPU tensors and synchronous copies.
// Invariants: a pinned tensor is an ordinary CPU tensor (device cpu) whose storage
// was allocated with cudaHostAlloc and is freed with cudaFreeHost; a pinned storage
// handed to an asynchronous copy is kept alive until that copy has completed.
#pragma once

#include "engine/tensor.h"

namespace zae {

/// Whether page-locked memory can be allocated here: a CUDA build with a visible device.
bool pinned_memory_available();

/// A contiguous, uninitialised CPU tensor in page-locked memory (ordinary CPU memory
/// where pinning is unavailable).
Tensor empty_pinned(const Shape& shape, DType dtype);

/// Whether t's memory is page-locked host memory (always false without CUDA).
bool is_pinned(const Tensor& t);

/// A contiguous copy of the CPU tensor t in page-locked memory; t itself when it is
/// already pinned or pinning is unavailable. Non-CPU tensors are an error.
Tensor pin_memory(const Tensor& t);

/// t on `device`. With non_blocking, a contiguous pinned host tensor goes to a CUDA
/// device with an asynchronous copy ordered on the device's legacy default stream
/// (later work on that stream sees the data; the host returns at once); every other
/// case is a synchronous Tensor::to. A tensor already on `device` is returned as is.
Tensor to_device(const Tensor& t, Device device, bool non_blocking);

}  // namespace zae
