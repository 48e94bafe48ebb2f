// CUDA reductions over (outer, k, inner) -> (outer, inner); the contract is in reduce.h.
//
// One kernel template serves every reduction: an Op supplies the state, the
// per-element accumulate (add), the merge of two states and the final write. Launch
// shapes (Plan):
// - inner == 1 (rows): block (bx, by): the bx threads of a row group walk k of one row
//   (coalesced), by rows per block; row_group_reduce merges the bx lanes (warp
//   shuffles, then shared memory across warps when bx > 32).
// - inner > 1 (columns): block (bx, by): bx consecutive outputs (coalesced along
//   inner), the by threads of a column group walk k; column_group_reduce merges them.
// - When the blocks that hold outputs cannot fill the device and k is long, k is cut
//   into `splits` chunks (grid.y); each block writes its partial states to the
//   workspace as (splits, nout) and reduce_partials_kernel merges the chunks of each
//   output in a fixed order (the deterministic two-pass path for very large sums).
// Each thread walks its k positions with kUnroll independent states (all loads of a
// step first, then the accumulates) and merges them in a fixed order.
#include "kernels/cuda/reduce.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/reduce_block.cuh"

namespace zae::kernels::cuda {

namespace {

using detail::ceil_div;
using detail::ceil_pow2;
using detail::from_acc;
using detail::to_acc;

constexpr int kUnroll = 4;
constexpr int64_t kThreads = 256;      // threads per block (512 for the longest rows)
constexpr size_t kMaxStateBytes = 32;  // every Op::State fits (checked below)
constexpr int64_t kMinPerThread = 16;  // k positions per thread and split before splitting k pays
constexpr int64_t kBlocksPerSm = 4;    // the grid size that counts as filling the device

/// A launch shape: see the file comment. A pure function of the shape and the device.
struct Plan {
  int64_t k = 0, inner = 1, nout = 0;
  bool row = true;
  int bx = 1, by = 1;
  int splits = 1;
  int64_t k_chunk = 0;  // k positions per split
  int64_t blocks = 1;   // grid.x
};

Plan make_plan(ReduceDims d) {
  Plan p;
  p.k = d.k;
  p.inner = d.inner;
  p.nout = d.outer * d.inner;
  p.row = d.inner == 1;
  const int64_t k_pow2 = ceil_pow2(std::max<int64_t>(d.k, 1));
  int64_t lanes_k = 1;
  if (p.row) {
    const int64_t bx = d.k <= 32 ? k_pow2 : std::clamp<int64_t>(ceil_pow2(ceil_div(d.k, 8)), 32, 512);
    p.bx = static_cast<int>(bx);
    p.by = static_cast<int>(std::max<int64_t>(1, kThreads / bx));
    p.blocks = ceil_div(d.outer, p.by);
    lanes_k = bx;
  } else {
    const int64_t nout_pow2 = ceil_pow2(p.nout);
    const int64_t bx0 = std::min<int64_t>(32, nout_pow2);
    const int64_t by = std::min<int64_t>(kThreads / bx0, k_pow2);
    const int64_t bx = std::min<int64_t>(nout_pow2, kThreads / by);
    p.bx = static_cast<int>(bx);
    p.by = static_cast<int>(by);
    p.blocks = ceil_div(p.nout, bx);
    lanes_k = by;
  }
  int64_t splits = 1;
  const int64_t target = kBlocksPerSm * detail::sm_count();
  if (p.blocks < target && d.k >= 2 * lanes_k * kMinPerThread)
    splits = std::min(ceil_div(target, p.blocks), d.k / (lanes_k * kMinPerThread));
  p.k_chunk = d.k > 0 ? ceil_div(d.k, splits) : 0;
  p.splits = d.k > 0 ? static_cast<int>(ceil_div(d.k, p.k_chunk)) : 1;  // no empty chunk
  return p;
}

// ---- ops -------------------------------------------------------------------------------

enum class SumMap : int { identity, absolute, square, power };
enum class SumFinish : int { plain, divide, root, inverse_power };

/// Sums of map(x) finished by `fin`. A: float / double (floating T) or uint64_t (integer T,
/// wrapping), Out: T or int64_t.
template <class T, class A, class Out>
struct SumOp {
  using In = T;
  using State = A;
  SumMap map = SumMap::identity;
  SumFinish fin = SumFinish::plain;
  A p = A(0);            // exponent of SumMap::power
  double divisor = 1.0;  // SumFinish::divide
  double inv_p = 1.0;    // SumFinish::inverse_power
  Out* out = nullptr;

  __device__ A init() const { return A(0); }
  __device__ void add(A& s, T v, int64_t) const {
    if constexpr (std::is_integral_v<A>) {
      s += static_cast<uint64_t>(static_cast<int64_t>(v));
    } else {
      const A a = to_acc(v);
      switch (map) {
        case SumMap::absolute: s += detail::abs_of(a); break;
        case SumMap::square: s += a * a; break;
        case SumMap::power: s += detail::pow_of(detail::abs_of(a), p); break;
        default: s += a; break;
      }
    }
  }
  __device__ A merge(A a, A b) const { return a + b; }
  __device__ void finish(A s, int64_t i) const {
    if constexpr (std::is_integral_v<A>) {
      out[i] = static_cast<int64_t>(s);
    } else {
      double v = static_cast<double>(s);
      switch (fin) {
        case SumFinish::divide: v = v / divisor; break;
        case SumFinish::root: v = sqrt(v); break;
        case SumFinish::inverse_power: v = pow(v, inv_p); break;
        default: break;
      }
      out[i] = from_acc<Out>(v);
    }
  }
};

/// The first extremum (NaN beats every number; ties go to the smaller index, which
/// makes the merge order-independent) of x or |x|.
template <class T>
struct BestOp {
  using In = T;
  using A = acc_t<T>;
  struct State {
    A val;
    int64_t idx;  // < 0: no element seen
  };
  bool is_max = true;
  bool absolute = false;  // floating T only (the inf-norm)
  T* values = nullptr;
  int64_t* indices = nullptr;

  __device__ State init() const { return State{A(), -1}; }
  __device__ State merge(const State& a, const State& b) const {
    if (a.idx < 0) return b;
    if (b.idx < 0) return a;
    const bool a_nan = detail::is_nan_of(a.val), b_nan = detail::is_nan_of(b.val);
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.idx <= b.idx ? a : b;
      return a_nan ? a : b;
    }
    if (a.val == b.val) return a.idx <= b.idx ? a : b;
    const bool a_wins = is_max ? a.val > b.val : a.val < b.val;
    return a_wins ? a : b;
  }
  __device__ void add(State& s, T v, int64_t kk) const {
    A a = to_acc(v);
    if constexpr (std::is_floating_point_v<A>) {
      if (absolute) a = detail::abs_of(a);
    }
    s = merge(s, State{a, kk});
  }
  __device__ void finish(const State& s, int64_t i) const {
    if (values != nullptr) values[i] = from_acc<T>(s.val);
    if (indices != nullptr) indices[i] = s.idx;
  }
};

/// Variance: Welford per thread, Chan's formula to merge.
template <class T>
struct VarOp {
  using In = T;
  using A = acc_t<T>;
  struct State {
    A mean;
    A m2;
    int64_t n;
  };
  double denom = 0.0;  // max(0, k - correction)
  T* out = nullptr;

  __device__ State init() const { return State{A(0), A(0), 0}; }
  __device__ void add(State& s, T v, int64_t) const {
    const A a = to_acc(v);
    s.n += 1;
    const A delta = a - s.mean;
    s.mean += delta / static_cast<A>(s.n);
    s.m2 += delta * (a - s.mean);
  }
  __device__ State merge(const State& a, const State& b) const {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    const int64_t n = a.n + b.n;
    const A delta = b.mean - a.mean;
    const A fb = static_cast<A>(b.n) / static_cast<A>(n);
    return State{a.mean + delta * fb, a.m2 + b.m2 + delta * delta * (static_cast<A>(a.n) * fb), n};
  }
  __device__ void finish(const State& s, int64_t i) const { out[i] = from_acc<T>(static_cast<double>(s.m2) / denom); }
};

/// logsumexp as a running (max, sum of exp) (detail::MaxSum), finished in double.
template <class T>
struct LseOp {
  using In = T;
  using A = acc_t<T>;
  using State = detail::MaxSum<A>;
  T* out = nullptr;

  __device__ State init() const { return detail::max_sum_init<A>(); }
  __device__ void add(State& st, T v, int64_t) const { detail::max_sum_add(st, to_acc(v)); }
  __device__ State merge(const State& a, const State& b) const { return detail::max_sum_merge(a, b); }
  __device__ void finish(const State& st, int64_t i) const {
    double r;
    if (detail::is_nan_of(st.s) || detail::is_inf_of(st.m))
      r = static_cast<double>(detail::max_sum_logsumexp(st));
    else
      r = static_cast<double>(st.m) + log(static_cast<double>(st.s));
    out[i] = from_acc<T>(r);
  }
};

// ---- kernels ---------------------------------------------------------------------------

template <class Op>
__global__ void __launch_bounds__(512)
    reduce_kernel(const typename Op::In* __restrict__ x, Plan p, Op op, typename Op::State* __restrict__ partials) {
  using S = typename Op::State;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  S* smem = reinterpret_cast<S*>(smem_bytes);  // (by, bx)
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t q = p.row ? static_cast<int64_t>(blockIdx.x) * p.by + ty : static_cast<int64_t>(blockIdx.x) * p.bx + tx;
  const int64_t lane = p.row ? tx : ty;
  const int64_t step = p.row ? p.bx : p.by;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * p.k_chunk;
  const int64_t k1 = min(p.k, k0 + p.k_chunk);
  auto merge = [&op](const S& a, const S& b) { return op.merge(a, b); };
  S acc = op.init();
  if (q < p.nout) {
    const int64_t o = q / p.inner, j = q - o * p.inner;
    const typename Op::In* base = x + o * p.k * p.inner + j;  // (k) at stride inner
    S part[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) part[u] = op.init();
    int64_t kk = k0 + lane;
    for (; kk + (kUnroll - 1) * step < k1; kk += kUnroll * step) {
      typename Op::In v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = base[(kk + u * step) * p.inner];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) op.add(part[u], v[u], kk + u * step);
    }
    for (; kk < k1; kk += step) op.add(part[0], base[kk * p.inner], kk);
    acc = part[0];
#pragma unroll
    for (int u = 1; u < kUnroll; ++u) acc = op.merge(acc, part[u]);
  }
  if (p.row)
    acc = detail::row_group_reduce(acc, merge, p.bx, smem);
  else
    acc = detail::column_group_reduce(acc, merge, p.bx, p.by, smem);
  const bool leader = p.row ? tx == 0 : ty == 0;
  if (leader && q < p.nout) {
    if (p.splits == 1)
      op.finish(acc, q);
    else
      partials[static_cast<int64_t>(blockIdx.y) * p.nout + q] = acc;
  }
}

/// Merges partials (splits, nout) over the splits, in split order per thread and then a
/// fixed tree. Block (bx, by): bx outputs, by threads along the splits.
template <class Op>
__global__ void __launch_bounds__(256)
    reduce_partials_kernel(const typename Op::State* __restrict__ partials, int splits, int64_t nout, Op op) {
  using S = typename Op::State;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  S* smem = reinterpret_cast<S*>(smem_bytes);  // (by, bx)
  const int bx = static_cast<int>(blockDim.x), by = static_cast<int>(blockDim.y);
  const int64_t q = static_cast<int64_t>(blockIdx.x) * bx + threadIdx.x;
  auto merge = [&op](const S& a, const S& b) { return op.merge(a, b); };
  S acc = op.init();
  if (q < nout)
    for (int s = static_cast<int>(threadIdx.y); s < splits; s += by) acc = op.merge(acc, partials[s * nout + q]);
  acc = detail::column_group_reduce(acc, merge, bx, by, smem);
  if (threadIdx.y == 0 && q < nout) op.finish(acc, q);
}

// ---- launch ----------------------------------------------------------------------------

template <class Op>
void launch(const typename Op::In* x, ReduceDims d, const Op& op, void* workspace, cudaStream_t stream) {
  using S = typename Op::State;
  static_assert(sizeof(S) <= kMaxStateBytes, "reduction state larger than the workspace slot");
  if (d.outer <= 0 || d.inner <= 0) return;
  const Plan p = make_plan(d);
  ZAE_CHECK(p.blocks <= INT_MAX, "reduce (cuda): ", d.outer, " x ", d.inner, " outputs need ", p.blocks,
            " blocks, more than a grid holds");
  ZAE_CHECK(p.splits == 1 || workspace != nullptr, "reduce (cuda): a split reduction of (", d.outer, ", ", d.k, ", ",
            d.inner, ") needs ", reduce_workspace_bytes(d), " bytes of workspace, got none");
  S* partials = static_cast<S*>(workspace);
  const dim3 grid(static_cast<unsigned>(p.blocks), static_cast<unsigned>(p.splits));
  const dim3 block(static_cast<unsigned>(p.bx), static_cast<unsigned>(p.by));
  reduce_kernel<Op><<<grid, block, sizeof(S) * p.bx * p.by, stream>>>(x, p, op, partials);
  if (p.splits > 1) {
    const int64_t bx = std::min<int64_t>(32, ceil_pow2(p.nout));
    const int64_t by = std::min<int64_t>(ceil_pow2(p.splits), kThreads / bx);
    const dim3 pblock(static_cast<unsigned>(bx), static_cast<unsigned>(by));
    reduce_partials_kernel<Op><<<static_cast<unsigned>(ceil_div(p.nout, bx)), pblock, sizeof(S) * bx * by, stream>>>(
        partials, p.splits, p.nout, op);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void best(const T* x, ReduceDims d, bool is_max, T* values, int64_t* indices, void* workspace, cudaStream_t stream) {
  BestOp<T> op;
  op.is_max = is_max;
  op.values = values;
  op.indices = indices;
  launch(x, d, op, workspace, stream);
}

}  // namespace

size_t reduce_workspace_bytes(ReduceDims d) {
  if (d.outer <= 0 || d.inner <= 0) return 0;
  const Plan p = make_plan(d);
  return p.splits > 1 ? static_cast<size_t>(p.splits) * static_cast<size_t>(p.nout) * kMaxStateBytes : 0;
}

template <class T>
void reduce_sum(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream) {
  SumOp<T, acc_t<T>, T> op;
  op.out = out;
  launch(x, d, op, workspace, stream);
}

template <class T>
void reduce_sum_integral(const T* x, ReduceDims d, int64_t* out, void* workspace, cudaStream_t stream) {
  SumOp<T, uint64_t, int64_t> op;
  op.out = out;
  launch(x, d, op, workspace, stream);
}

template <class T>
void reduce_mean(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream) {
  SumOp<T, acc_t<T>, T> op;
  op.fin = SumFinish::divide;
  op.divisor = static_cast<double>(d.k);
  op.out = out;
  launch(x, d, op, workspace, stream);
}

template <class T>
void reduce_var(const T* x, ReduceDims d, int64_t correction, T* out, void* workspace, cudaStream_t stream) {
  VarOp<T> op;
  op.denom = std::max(0.0, static_cast<double>(d.k) - static_cast<double>(correction));
  op.out = out;
  launch(x, d, op, workspace, stream);
}

template <class T>
void reduce_argmax(const T* x, ReduceDims d, T* values, int64_t* indices, void* workspace, cudaStream_t stream) {
  best(x, d, true, values, indices, workspace, stream);
}

template <class T>
void reduce_argmin(const T* x, ReduceDims d, T* values, int64_t* indices, void* workspace, cudaStream_t stream) {
  best(x, d, false, values, indices, workspace, stream);
}

template <class T>
void reduce_logsumexp(const T* x, ReduceDims d, T* out, void* workspace, cudaStream_t stream) {
  LseOp<T> op;
  op.out = out;
  launch(x, d, op, workspace, stream);
}

template <class T>
void reduce_norm(const T* x, ReduceDims d, double p, T* out, void* workspace, cudaStream_t stream) {
  if (std::isinf(p)) {
    BestOp<T> op;
    op.absolute = true;
    op.values = out;
    launch(x, d, op, workspace, stream);
    return;
  }
  SumOp<T, acc_t<T>, T> op;
  op.out = out;
  if (p == 2.0) {
    op.map = SumMap::square;
    op.fin = SumFinish::root;
  } else if (p == 1.0) {
    op.map = SumMap::absolute;
  } else {
    op.map = SumMap::power;
    op.p = static_cast<acc_t<T>>(p);
    op.fin = SumFinish::inverse_power;
    op.inv_p = 1.0 / p;
  }
  launch(x, d, op, workspace, stream);
}

#define ZAE_CUDA_REDUCE_FLOATING(T)                                                    \
  template void reduce_sum<T>(const T*, ReduceDims, T*, void*, cudaStream_t);          \
  template void reduce_mean<T>(const T*, ReduceDims, T*, void*, cudaStream_t);         \
  template void reduce_var<T>(const T*, ReduceDims, int64_t, T*, void*, cudaStream_t); \
  template void reduce_logsumexp<T>(const T*, ReduceDims, T*, void*, cudaStream_t);    \
  template void reduce_norm<T>(const T*, ReduceDims, double, T*, void*, cudaStream_t);
ZAE_CUDA_REDUCE_FLOATING(float)
ZAE_CUDA_REDUCE_FLOATING(double)
ZAE_CUDA_REDUCE_FLOATING(Half)
ZAE_CUDA_REDUCE_FLOATING(BFloat16)
#undef ZAE_CUDA_REDUCE_FLOATING

#define ZAE_CUDA_REDUCE_INTEGRAL(T) \
  template void reduce_sum_integral<T>(const T*, ReduceDims, int64_t*, void*, cudaStream_t);
ZAE_CUDA_REDUCE_INTEGRAL(int32_t)
ZAE_CUDA_REDUCE_INTEGRAL(int64_t)
ZAE_CUDA_REDUCE_INTEGRAL(uint8_t)
ZAE_CUDA_REDUCE_INTEGRAL(bool)
#undef ZAE_CUDA_REDUCE_INTEGRAL

#define ZAE_CUDA_REDUCE_EXTREMA(T)                                                         \
  template void reduce_argmax<T>(const T*, ReduceDims, T*, int64_t*, void*, cudaStream_t); \
  template void reduce_argmin<T>(const T*, ReduceDims, T*, int64_t*, void*, cudaStream_t);
ZAE_CUDA_REDUCE_EXTREMA(float)
ZAE_CUDA_REDUCE_EXTREMA(double)
ZAE_CUDA_REDUCE_EXTREMA(Half)
ZAE_CUDA_REDUCE_EXTREMA(BFloat16)
ZAE_CUDA_REDUCE_EXTREMA(int32_t)
ZAE_CUDA_REDUCE_EXTREMA(int64_t)
ZAE_CUDA_REDUCE_EXTREMA(uint8_t)
ZAE_CUDA_REDUCE_EXTREMA(bool)
#undef ZAE_CUDA_REDUCE_EXTREMA

}  // namespace zae::kernels::cuda
