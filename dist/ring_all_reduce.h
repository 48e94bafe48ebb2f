// Ring all-reduce, written out over ProcessGroup::send_recv: the algorithm behind Gloo's
// and NCCL's large all-reduces (Patarasuk & Yuan 2009; Baidu's "ring allreduce" 2017),
// here in plain code so it can be read, tested against the library and benchmarked.
//
// The n ranks form a ring: rank r sends only to r+1 and receives only from r-1 (mod n).
// The tensor is cut into n chunks (sizes differ by at most one element; with fewer
// elements than ranks some chunks are empty). Two phases of n-1 steps each:
//
//   1. reduce-scatter. At step s (0..n-2) rank r sends chunk (r - s) mod n to r+1 and
//      receives chunk (r - s - 1) mod n from r-1, which it reduces into its own copy.
//      Each chunk travels n-1 hops round the ring collecting one contribution per hop,
//      so after the last step rank r holds chunk (r + 1) mod n fully reduced.
//
//        n = 3, step 0:  r0 sends c0 -> r1   r1 sends c1 -> r2   r2 sends c2 -> r0
//                step 1:  r0 sends c2 -> r1   r1 sends c0 -> r2   r2 sends c1 -> r0
//        now r0 owns c1 = a1+b1+c1, r1 owns c2, r2 owns c0 (all three summed).
//
//   2. all-gather. At step s rank r sends chunk (r - s + 1) mod n, the finished one it
//      owns or has just received, to r+1 and receives chunk (r - s) mod n from r-1, now
//      copying instead of reducing. After n-1 steps every rank has every finished chunk.
//
// Cost: every rank sends (and receives) 2 (n-1) chunks of N/n elements, 2 (n-1)/n * N
// in all: nearly independent of n, and equal to the proven lower bound for an
// all-reduce over point-to-point links (Patarasuk & Yuan); every link of the ring is
// busy at every step. That is why it is "bandwidth optimal" and why
// benchmarks quote bus bandwidth = 2 (n-1)/n * bytes / time (what each link carried).
// The price is 2 (n-1) sequential latencies, so small tensors prefer tree algorithms.
//
// Invariants: every rank calls with the same shape and dtype (the ProcessGroup contract);
// the result is identical on every rank (each chunk is reduced by one rank, in ring order,
// then copied); avg = sum divided once at the end (floating dtypes only; integer avg is an
// error); bfloat16/float16 are reduced in a float32 copy and rounded back once; on the CPU
// the reductions run in dist/reduce_kernels, on other devices through the engine's
// elementwise ops.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dist/process_group.h"

namespace zae::dist {

/// The tag that the ring's messages carry in ProcessGroup::send_recv ("RING").
inline constexpr uint32_t kRingTag = 0x52494e47;

/// In place: t = op over all ranks' t, computed as a ring over pg.send_recv (see above).
/// t is contiguous; every rank of pg calls it with the same shape and dtype.
void ring_all_reduce(ProcessGroup& pg, Tensor& t, ReduceOp op = ReduceOp::sum);

/// ProcessGroup::reduce_scatter's contract computed by the ring's first phase alone:
/// `in` has shape (size() * n, ...); returns this rank's rows [rank()*n, (rank()+1)*n) of
/// the reduction, shape (n, ...). Sends (size()-1)/size() of `in`'s bytes per rank.
Tensor ring_reduce_scatter(ProcessGroup& pg, const Tensor& in, ReduceOp op = ReduceOp::sum);

namespace detail {

/// One ring step's transport: sends `out` to `dst` while receiving `in` from `src`
/// (ProcessGroup::send_recv's contract). Either tensor may be empty.
using SendRecvFn = std::function<void(const Tensor& out, int dst, Tensor& in, int src)>;

/// The ring algorithms over any transport (the Gloo group passes its own, unqueued one).
void ring_all_reduce(const SendRecvFn& send_recv, int rank, int size, Tensor& t, ReduceOp op);
Tensor ring_reduce_scatter(const SendRecvFn& send_recv, int rank, int size, const Tensor& in, ReduceOp op);

/// The n + 1 boundaries of the ring's chunks of `numel` elements: chunk i is
/// [b[i], b[i+1]); the first numel % n chunks hold one element more.
std::vector<int64_t> ring_chunk_bounds(int64_t numel, int n);

}  // namespace detail
}  // namespace zae::dist
