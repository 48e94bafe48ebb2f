// Backend choice at an op's entry (DESIGN.md convention 2): the device switch of the
// op families that have CPU and CUDA kernels (elementwise unary/binary/compare/where,
// copy/cast, fill and random fills, dropout). Plain C++ in every build, so the choice
// and its error are unit-tested without a GPU.
// Invariant: a CUDA device maps to Backend::cuda only in builds with the CUDA backend;
// anything else fails with "<op>: not implemented for device <device> in this build".
#pragma once

#include "engine/device.h"
#include "engine/dtype.h"

namespace zae {

/// Which kernels run an op.
enum class Backend { cpu, cuda };

/// Whether this build has CUDA kernels for the elementwise families.
bool elementwise_cuda_compiled();

/// Whether this build has kernels for `device`: the CPU always, CUDA in CUDA builds (every
/// op family with a CUDA twin checks this at its entry).
bool has_kernels_for(const Device& device);

/// The dtype statistics and accumulators of normalisations are kept in: float64 for
/// float64 data, float32 for every other floating dtype.
inline DType accumulate_dtype(DType t) { return t == DType::float64 ? DType::float64 : DType::float32; }

/// The backend for an elementwise-family op on `device`; fails naming the op, the device
/// and the dtype when this build has no kernels for that device.
Backend elementwise_backend(const char* op_name, Device device, DType dtype);

}  // namespace zae
