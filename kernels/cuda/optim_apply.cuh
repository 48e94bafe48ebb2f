// Device-side helpers of the multi-tensor optimizer kernels (kernels/cuda/optim.cu):
// separately rounded arithmetic, 4-element (up to 16-byte) vector loads and stores, and
// the chunk table that carries a launch's tensors in the kernel's argument struct.
//
// Invariants:
// - add/mul/div/sqrt_rn round each operation to nearest even and are never fused or
//   reordered by the compiler (nvcc contracts a * b + c into an FMA unless told not
//   to), so a kernel written with them computes exactly what the CPU twin computes.
// - A ChunkTable plus the kernel's scalar struct fits the 4 KiB kernel-argument limit
//   (static_assert at the kernels). Block b updates elements [c * kChunk, min((c + 1) *
//   kChunk, n)) of tensor entry[block_tensor[b]] where c = block_chunk[b].
// - Vector accesses are used only when every array of a tensor is aligned to the vector
//   width and the 4 elements lie inside the chunk; other elements go one by one.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cuda::optim_detail {

constexpr int kThreads = 256;         // threads per block
constexpr int64_t kChunk = 32768;     // elements per block (a multiple of 4 * kThreads)
constexpr int kMaxBlocks = 320;       // blocks per launch
constexpr size_t kTableBytes = 3840;  // kernel-argument bytes for the table (limit 4096)

// ---- separately rounded arithmetic ---------------------------------------------------

__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }

/// torch.maximum: NaN in either operand propagates (the CPU twin's nan_max).
template <class C>
__device__ __forceinline__ C nan_max(C a, C b) {
  return (a > b || a != a) ? a : b;
}

// ---- 4-element accesses ----------------------------------------------------------------

template <class T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};

template <class T>
__device__ __forceinline__ bool quad_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(Quad<T>) == 0;
}

/// Elements i .. i+3 of p (those at or past `end` read as zero).
template <class T>
__device__ __forceinline__ Quad<T> load4(const T* p, int64_t i, int64_t end, bool vec) {
  if (vec) return *reinterpret_cast<const Quad<T>*>(p + i);
  Quad<T> q;
#pragma unroll
  for (int k = 0; k < 4; ++k) q.v[k] = i + k < end ? p[i + k] : T();
  return q;
}

/// Stores the elements of q that lie before `end` at p + i.
template <class T>
__device__ __forceinline__ void store4(T* p, const Quad<T>& q, int64_t i, int64_t end, bool vec) {
  if (vec) {
    *reinterpret_cast<Quad<T>*>(p + i) = q;
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k)
    if (i + k < end) p[i + k] = q.v[k];
}

// ---- the chunk table ---------------------------------------------------------------------

template <class Entry>
struct ChunkTable {
  static constexpr int kTensorsRaw = static_cast<int>((kTableBytes - kMaxBlocks * 5) / sizeof(Entry));
  static constexpr int kTensors = kTensorsRaw < 255 ? kTensorsRaw : 255;
  Entry entry[kTensors];
  uint8_t block_tensor[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};

/// The element range [begin, end) of this block's chunk and its tensor's entry.
template <class Entry>
__device__ __forceinline__ Entry block_entry(const ChunkTable<Entry>& table, int64_t& begin, int64_t& end) {
  const Entry e = table.entry[table.block_tensor[blockIdx.x]];
  begin = static_cast<int64_t>(table.block_chunk[blockIdx.x]) * kChunk;
  end = begin + kChunk < e.n ? begin + kChunk : e.n;
  return e;
}

/// Packs tensors 0 .. n_tensors-1 (entries from make(t), sizes[t] elements) into
/// tables and calls launch(table, n_blocks) whenever one is full, and for the rest.
/// Empty tensors get no block. A tensor split across two tables appears in both.
template <class Entry, class Make, class Launch>
void pack_chunks(int n_tensors, const int64_t* sizes, Make&& make, Launch&& launch) {
  ChunkTable<Entry> table{};
  int nt = 0, nb = 0;
  auto flush = [&] {
    if (nb > 0) launch(table, nb);
    nt = 0;
    nb = 0;
  };
  for (int t = 0; t < n_tensors; ++t) {
    const int64_t chunks = (sizes[t] + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks;) {
      if (nt == ChunkTable<Entry>::kTensors) flush();
      table.entry[nt] = make(t);
      const int slot = nt++;
      for (; c < chunks && nb < kMaxBlocks; ++c, ++nb) {
        table.block_tensor[nb] = static_cast<uint8_t>(slot);
        table.block_chunk[nb] = static_cast<int32_t>(c);
      }
      if (nb == kMaxBlocks) flush();
    }
  }
  flush();
}

}  // namespace zae::kernels::cuda::optim_detail
