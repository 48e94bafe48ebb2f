// A stable LSD radix sort of (uint64 key, int64 value) pairs on the device, 8 bits per
// pass: the ordering step of the deterministic accumulation paths (index_accumulate.cu).
// Per pass: (1) each block counts the digits of its contiguous range; (2) one block
// turns the (digit-major, block-minor) count table into exclusive offsets; (3) each
// block walks its range in tiles of kSortThreads elements, ranks every element among
// the equal digits before it (warp match + popcount, then the warps before it, then the
// tiles before it) and writes it to its offset.
// Invariants: stable (equal keys keep their input order), so sorting (key, position)
// pairs whose positions start in increasing order yields, per key, the positions in
// increasing order. Only the low `bits` bits of the keys are examined: keys must be
// < 2^bits. Needs sm_70+ (__match_any_sync). All work is on one stream; no sync.
// The kernels have internal linkage: include this file from one .cu only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"

namespace zae::kernels::cuda::index_detail {

constexpr int kSortThreads = 256;  // = the number of digits; 8 warps
constexpr int kSortWarps = kSortThreads / 32;
constexpr int kMaxSortBlocks = 1024;
constexpr int kScanThreads = 1024;

struct SortPlan {
  int blocks = 1;
  int64_t per_block = 0;  // elements per block, a multiple of kSortThreads
};

inline SortPlan sort_plan(int64_t n) {
  const int64_t tiles = (n + kSortThreads - 1) / kSortThreads;
  int64_t blocks = tiles < kMaxSortBlocks ? tiles : kMaxSortBlocks;
  if (blocks < 1) blocks = 1;
  const int64_t tiles_per_block = (tiles + blocks - 1) / blocks;
  SortPlan p;
  p.per_block = (tiles_per_block > 0 ? tiles_per_block : 1) * kSortThreads;
  p.blocks = static_cast<int>((n + p.per_block - 1) / p.per_block);
  if (p.blocks < 1) p.blocks = 1;
  return p;
}

/// Bytes of workspace radix_sort_pairs needs for n pairs: two key and two value
/// buffers (the input goes in the first pair) and the count table.
inline size_t sort_workspace_bytes(int64_t n) {
  const SortPlan p = sort_plan(n);
  return static_cast<size_t>(n) * 32 + static_cast<size_t>(p.blocks) * kSortThreads * 8;
}

/// The number of low bits that hold every key <= max_key.
inline int key_bits(uint64_t max_key) {
  int b = 0;
  while (b < 64 && (max_key >> b) != 0) ++b;
  return b;
}

static __global__ void __launch_bounds__(kSortThreads)
    radix_histogram(const uint64_t* keys, int64_t n, int shift, int64_t per_block, int64_t* hist) {
  __shared__ unsigned int count[kSortThreads];  // (256) digits of this block's range
  count[threadIdx.x] = 0;
  __syncthreads();
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * per_block;
  const int64_t end = begin + per_block < n ? begin + per_block : n;
  for (int64_t i = begin + threadIdx.x; i < end; i += kSortThreads)
    atomicAdd(&count[(keys[i] >> shift) & 0xffu], 1u);
  __syncthreads();
  hist[static_cast<int64_t>(threadIdx.x) * gridDim.x + blockIdx.x] = count[threadIdx.x];
}

/// Exclusive prefix sum of hist (m entries) in place, by one block.
static __global__ void __launch_bounds__(kScanThreads) radix_scan(int64_t* hist, int64_t m) {
  __shared__ int64_t part[kScanThreads];
  const int64_t per = (m + kScanThreads - 1) / kScanThreads;
  const int64_t begin = threadIdx.x * per;
  const int64_t end = begin + per < m ? begin + per : m;
  int64_t sum = 0;
  for (int64_t i = begin; i < end; ++i) sum += hist[i];
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int off = 1; off < kScanThreads; off <<= 1) {  // inclusive Hillis-Steele scan of the partial sums
    const int64_t v = threadIdx.x >= off ? part[threadIdx.x - off] : 0;
    __syncthreads();
    part[threadIdx.x] += v;
    __syncthreads();
  }
  int64_t run = part[threadIdx.x] - sum;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t c = hist[i];
    hist[i] = run;
    run += c;
  }
}

static __global__ void __launch_bounds__(kSortThreads)
    radix_scatter(const uint64_t* keys_in, const int64_t* vals_in, uint64_t* keys_out, int64_t* vals_out, int64_t n,
                  int shift, int64_t per_block, const int64_t* hist) {
  __shared__ int64_t base[kSortThreads];                     // (256) next output slot per digit
  __shared__ unsigned int warp_count[kSortWarps][kSortThreads];  // (8, 256) digits per warp of a tile
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  base[tid] = hist[static_cast<int64_t>(tid) * gridDim.x + blockIdx.x];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * per_block;
  const int64_t end = begin + per_block < n ? begin + per_block : n;
  for (int64_t tile = begin; tile < end; tile += kSortThreads) {
    for (int w = 0; w < kSortWarps; ++w) warp_count[w][tid] = 0;
    __syncthreads();
    const int64_t i = tile + tid;
    const bool valid = i < end;
    uint64_t key = 0;
    int64_t val = 0;
    unsigned digit = kSortThreads;  // invalid lanes share a digit no valid lane has
    if (valid) {
      key = keys_in[i];
      val = vals_in[i];
      digit = static_cast<unsigned>((key >> shift) & 0xffu);
    }
    const unsigned peers = __match_any_sync(0xffffffffu, digit);
    const unsigned rank = __popc(peers & ((1u << lane) - 1u));
    if (valid && lane == __ffs(peers) - 1) warp_count[warp][digit] = __popc(peers);
    __syncthreads();
    if (valid) {
      int64_t pos = base[digit] + rank;
      for (int w = 0; w < warp; ++w) pos += warp_count[w][digit];
      keys_out[pos] = key;
      vals_out[pos] = val;
    }
    __syncthreads();
    unsigned total = 0;
    for (int w = 0; w < kSortWarps; ++w) total += warp_count[w][tid];
    base[tid] += total;
    __syncthreads();
  }
}

/// Sorts n pairs held in keys[0, n) / vals[0, n) of `workspace` (laid out as
/// sort_workspace_bytes describes) by the low `bits` bits of the keys, stably. Returns
/// the offset (0 or n) at which the sorted keys and values start in their buffers.
inline int64_t radix_sort_pairs(void* workspace, int64_t n, int bits, cudaStream_t stream) {
  if (n <= 1 || bits <= 0) return 0;
  const SortPlan plan = sort_plan(n);
  auto* keys = static_cast<uint64_t*>(workspace);  // (2n)
  auto* vals = reinterpret_cast<int64_t*>(keys + 2 * n);  // (2n)
  int64_t* hist = vals + 2 * n;                           // (256 * blocks)
  int64_t src = 0;
  for (int shift = 0; shift < bits; shift += 8) {
    const int64_t dst = n - src;
    radix_histogram<<<plan.blocks, kSortThreads, 0, stream>>>(keys + src, n, shift, plan.per_block, hist);
    radix_scan<<<1, kScanThreads, 0, stream>>>(hist, static_cast<int64_t>(plan.blocks) * kSortThreads);
    radix_scatter<<<plan.blocks, kSortThreads, 0, stream>>>(keys + src, vals + src, keys + dst, vals + dst, n, shift,
                                                            plan.per_block, hist);
    CUDA_CHECK(cudaGetLastError());
    src = dst;
  }
  return src;
}

}  // namespace zae::kernels::cuda::index_detail
