// CPU reductions over (outer, k, inner) -> (outer, inner); see reduce.h for the invariants.
//
// Work split: a task reduces one tile of <= kTile output columns (one column when
// inner == 1) over one chunk of k. Chunk sizes are fixed by the shape (about
// kTaskElems input elements each), so long rows and tall columns run in parallel
// and the partials are folded in k order, independent of the thread count.
// Rows (inner == 1) are read as one dense run; columns (inner > 1) are read a row of
// the tile at a time, keeping one partial per column, so memory is walked densely.
#include "kernels/cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu {

namespace {

constexpr int kLanes = 16;               // independent partial sums on a row
constexpr int64_t kRowBlock = 1024;      // row elements summed in acc_t before flushing to double
constexpr int64_t kColBlock = 128;       // column rows summed in acc_t before flushing to double
constexpr int64_t kTile = 256;           // output columns per task when inner > 1
constexpr int64_t kTaskElems = 1 << 15;  // input elements per task (a multiple of kRowBlock)

template <class T>
inline acc_t<T> load(T v) {
  return static_cast<acc_t<T>>(v);
}

template <class T>
inline T store(double v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
    return T(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

template <class A>
inline bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}

/// True when a is a strictly better extremum than b (NaN beats every number).
template <bool kMax, class A>
inline bool better(A a, A b) {
  bool strict = kMax ? (a > b) : (a < b);
  return strict || (is_nan(a) && !is_nan(b));
}

// ---- task split -----------------------------------------------------------

struct Split {
  int64_t tile = 1;  // output columns per task
  int64_t ntiles = 1;
  int64_t kchunk = 1;   // reduced positions per task
  int64_t nchunks = 1;  // >= 1, so k == 0 still produces an identity partial
};

Split make_split(ReduceDims d, int64_t block) {
  Split s;
  s.tile = std::min(d.inner, kTile);
  s.ntiles = (d.inner + s.tile - 1) / s.tile;
  int64_t rows = std::max<int64_t>(1, kTaskElems / s.tile);
  rows = (rows + block - 1) / block * block;  // chunks start on block boundaries
  s.kchunk = rows;
  s.nchunks = std::max<int64_t>(1, (d.k + rows - 1) / rows);
  return s;
}

/// Runs partial(o, j0, w, k0, kn, acc) for every task (acc has w slots), folds the
/// chunks of each output column in k order with combine(earlier, later), and calls
/// finish(output_index, acc) once per output element.
template <class Acc, class Partial, class Combine, class Finish>
void run_split(ReduceDims d, int64_t block, Partial&& partial, Combine&& combine, Finish&& finish) {
  if (d.outer <= 0 || d.inner <= 0) return;
  const Split s = make_split(d, block);
  const int64_t ntasks = d.outer * s.ntiles * s.nchunks;
  const int64_t task_elems = std::max<int64_t>(1, std::min(s.kchunk, d.k) * s.tile);
  const int64_t grain = std::max<int64_t>(1, kTaskElems / task_elems);
  const bool one_per_row = s.nchunks == 1 && s.ntiles == 1;  // task t is row t: skip the divisions
  auto run_task = [&](int64_t t, Acc* acc, int64_t& out0, int64_t& w) {
    const int64_t c = one_per_row ? 0 : t % s.nchunks, rest = one_per_row ? t : t / s.nchunks;
    const int64_t o = one_per_row ? t : rest / s.ntiles, j0 = one_per_row ? 0 : rest % s.ntiles * s.tile;
    const int64_t k0 = c * s.kchunk, kn = std::max<int64_t>(0, std::min(s.kchunk, d.k - k0));
    w = std::min(s.tile, d.inner - j0);
    out0 = o * d.inner + j0;
    partial(o, j0, w, k0, kn, acc);
  };
  if (s.nchunks == 1) {
    parallel_for(ntasks, grain, [&](int64_t b, int64_t e) {
      Acc acc[kTile];
      for (int64_t t = b; t < e; ++t) {
        int64_t out0 = 0, w = 0;
        run_task(t, acc, out0, w);
        for (int64_t j = 0; j < w; ++j) finish(out0 + j, acc[j]);
      }
    });
    return;
  }
  std::vector<Acc> parts(static_cast<size_t>(ntasks * s.tile));  // (outer, ntiles, nchunks, tile)
  parallel_for(ntasks, grain, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t out0 = 0, w = 0;
      run_task(t, parts.data() + t * s.tile, out0, w);
    }
  });
  const int64_t nfold = d.outer * s.ntiles;
  parallel_for(nfold, std::max<int64_t>(1, kDefaultGrain / (s.nchunks * s.tile)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t o = u / s.ntiles, j0 = u % s.ntiles * s.tile, w = std::min(s.tile, d.inner - j0);
      Acc* first = parts.data() + u * s.nchunks * s.tile;
      for (int64_t c = 1; c < s.nchunks; ++c)
        for (int64_t j = 0; j < w; ++j) combine(first[j], first[c * s.tile + j]);
      for (int64_t j = 0; j < w; ++j) finish(o * d.inner + j0 + j, first[j]);
    }
  });
}

// ---- sums of map(x, p) -----------------------------------------------------

/// sum(map(x[i], p)) over a dense run of n elements: 16 acc_t lanes per block, blocks in double.
template <class T, class Map>
double row_sum(const T* x, int64_t n, Map map, acc_t<T> p) {
  using A = acc_t<T>;
  if (n < 2 * kLanes) {  // short rows: one accumulator, no lane setup
    A s = A(0);
    for (int64_t i = 0; i < n; ++i) s += map(load(x[i]), p);
    return static_cast<double>(s);
  }
  double total = 0.0;
  for (int64_t b = 0; b < n; b += kRowBlock) {
    const int64_t e = std::min(n, b + kRowBlock);
    A lane[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int l = 0; l < kLanes; ++l) lane[l] += map(load(x[i + l]), p);
    for (; i < e; ++i) lane[0] += map(load(x[i]), p);
    for (int width = kLanes / 2; width > 0; width /= 2)
      for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
    total += static_cast<double>(lane[0]);
  }
  return total;
}

/// out[j] = sum over rows r of map(x[r * inner + j], p[j]), j < w. // x: (rows, inner)
template <class T, class Map>
void col_sum(const T* x, int64_t rows, int64_t inner, int64_t w, Map map, const acc_t<T>* p, double* out) {
  using A = acc_t<T>;
  A blk[kTile];
  for (int64_t j = 0; j < w; ++j) out[j] = 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += kColBlock) {
    const int64_t r1 = std::min(rows, r0 + kColBlock);
    for (int64_t j = 0; j < w; ++j) blk[j] = A(0);
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * inner;
      for (int64_t j = 0; j < w; ++j) blk[j] += map(load(row[j]), p[j]);
    }
    for (int64_t j = 0; j < w; ++j) out[j] += static_cast<double>(blk[j]);
  }
}

/// finish(i, s) with s = sum over k of map(x, params[i]) in double; params may be null (p = 0).
template <class T, class Map, class Finish>
void sum_driver(const T* x, ReduceDims d, const acc_t<T>* params, Map map, Finish&& finish) {
  using A = acc_t<T>;
  const int64_t block = d.inner == 1 ? kRowBlock : kColBlock;
  auto partial = [&](int64_t o, int64_t j0, int64_t w, int64_t k0, int64_t kn, double* acc) {
    const T* base = x + (o * d.k + k0) * d.inner + j0;  // (kn, inner) starting at column j0
    if (d.inner == 1) {
      acc[0] = row_sum(base, kn, map, params ? params[o] : A(0));
      return;
    }
    A zero[kTile] = {};
    col_sum(base, kn, d.inner, w, map, params ? params + o * d.inner + j0 : zero, acc);
  };
  run_split<double>(
      d, block, partial, [](double& a, double b) { a += b; }, finish);
}

// ---- extrema ---------------------------------------------------------------

template <class A>
struct Best {
  A val{};
  int64_t idx = 0;
};

/// The first extremum of map(x[i]) over a dense run of n >= 1 elements: a lane-wise
/// pass for the value, then a scan for its first position.
template <bool kMax, class T, class Map>
Best<acc_t<T>> row_best(const T* x, int64_t n, Map map, bool want_index) {
  using A = acc_t<T>;
  if (n < 2 * kLanes) {  // short rows: one pass keeps the first extremum
    Best<A> best{map(load(x[0])), 0};
    for (int64_t i = 1; i < n; ++i) {
      const A v = map(load(x[i]));
      if (better<kMax>(v, best.val)) best = Best<A>{v, i};
    }
    return best;
  }
  A lane[kLanes];
  const A first = map(load(x[0]));
  for (int l = 0; l < kLanes; ++l) lane[l] = first;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const A v = map(load(x[i + l]));
      lane[l] = better<kMax>(v, lane[l]) ? v : lane[l];
    }
  for (; i < n; ++i) {
    const A v = map(load(x[i]));
    lane[0] = better<kMax>(v, lane[0]) ? v : lane[0];
  }
  Best<A> best{lane[0], 0};
  for (int l = 1; l < kLanes; ++l)
    if (better<kMax>(lane[l], best.val)) best.val = lane[l];
  if (!want_index) return best;
  const bool nan = is_nan(best.val);
  for (int64_t j = 0; j < n; ++j) {
    const A v = map(load(x[j]));
    if (nan ? is_nan(v) : v == best.val) {
      best.idx = j;
      best.val = v;
      break;
    }
  }
  return best;
}

/// finish(i, best) with best = the first extremum over k of map(x) (k >= 1).
template <bool kMax, class T, class Map, class Finish>
void best_driver(const T* x, ReduceDims d, Map map, bool want_index, Finish&& finish) {
  using A = acc_t<T>;
  const int64_t block = d.inner == 1 ? kRowBlock : kColBlock;
  auto partial = [&](int64_t o, int64_t j0, int64_t w, int64_t k0, int64_t kn, Best<A>* acc) {
    const T* base = x + (o * d.k + k0) * d.inner + j0;  // (kn, inner) starting at column j0
    if (d.inner == 1) {
      acc[0] = row_best<kMax>(base, kn, map, want_index);
      acc[0].idx += k0;
      return;
    }
    for (int64_t j = 0; j < w; ++j) acc[j] = Best<A>{map(load(base[j])), k0};
    for (int64_t r = 1; r < kn; ++r) {
      const T* row = base + r * d.inner;
      for (int64_t j = 0; j < w; ++j) {
        const A v = map(load(row[j]));
        if (better<kMax>(v, acc[j].val)) acc[j] = Best<A>{v, k0 + r};
      }
    }
  };
  auto combine = [](Best<A>& a, const Best<A>& later) {
    if (better<kMax>(later.val, a.val)) a = later;
  };
  run_split<Best<A>>(d, block, partial, combine, finish);
}

template <bool kMax, class T>
void arg_extremum(const T* x, ReduceDims d, T* values, int64_t* indices) {
  using A = acc_t<T>;
  best_driver<kMax>(
      x, d, [](A v) { return v; }, indices != nullptr,
      [&](int64_t i, const Best<A>& b) {
        if (values) values[i] = static_cast<T>(b.val);
        if (indices) indices[i] = b.idx;
      });
}

}  // namespace

template <class T>
void reduce_sum(const T* x, ReduceDims d, T* out) {
  using A = acc_t<T>;
  sum_driver(
      x, d, nullptr, [](A v, A) { return v; }, [&](int64_t i, double s) { out[i] = store<T>(s); });
}

template <class T>
void reduce_sum_integral(const T* x, ReduceDims d, int64_t* out) {
  // Accumulate in uint64 so that overflow wraps (two's complement) instead of being undefined.
  auto partial = [&](int64_t o, int64_t j0, int64_t w, int64_t k0, int64_t kn, uint64_t* acc) {
    const T* base = x + (o * d.k + k0) * d.inner + j0;  // (kn, inner) starting at column j0
    for (int64_t j = 0; j < w; ++j) acc[j] = 0;
    for (int64_t r = 0; r < kn; ++r) {
      const T* row = base + r * d.inner;
      for (int64_t j = 0; j < w; ++j) acc[j] += static_cast<uint64_t>(static_cast<int64_t>(row[j]));
    }
  };
  run_split<uint64_t>(
      d, 1, partial, [](uint64_t& a, uint64_t b) { a += b; },
      [&](int64_t i, uint64_t s) { out[i] = static_cast<int64_t>(s); });
}

template <class T>
void reduce_mean(const T* x, ReduceDims d, T* out) {
  using A = acc_t<T>;
  const double k = static_cast<double>(d.k);
  sum_driver(
      x, d, nullptr, [](A v, A) { return v; }, [&](int64_t i, double s) { out[i] = store<T>(s / k); });
}

template <class T>
void reduce_var(const T* x, ReduceDims d, int64_t correction, T* out) {
  using A = acc_t<T>;
  const double k = static_cast<double>(d.k);
  std::vector<A> means(static_cast<size_t>(std::max<int64_t>(0, d.outer * d.inner)));  // (outer, inner)
  sum_driver(
      x, d, nullptr, [](A v, A) { return v; }, [&](int64_t i, double s) { means[i] = static_cast<A>(s / k); });
  const double denom = std::max(0.0, k - static_cast<double>(correction));
  sum_driver(
      x, d, means.data(), [](A v, A m) { return (v - m) * (v - m); },
      [&](int64_t i, double m2) { out[i] = store<T>(m2 / denom); });
}

template <class T>
void reduce_amax(const T* x, ReduceDims d, T* out) {
  arg_extremum<true>(x, d, out, nullptr);
}
template <class T>
void reduce_amin(const T* x, ReduceDims d, T* out) {
  arg_extremum<false>(x, d, out, nullptr);
}
template <class T>
void reduce_argmax(const T* x, ReduceDims d, T* values, int64_t* indices) {
  arg_extremum<true>(x, d, values, indices);
}
template <class T>
void reduce_argmin(const T* x, ReduceDims d, T* values, int64_t* indices) {
  arg_extremum<false>(x, d, values, indices);
}

template <class T>
void reduce_logsumexp(const T* x, ReduceDims d, T* out) {
  using A = acc_t<T>;
  const int64_t nout = std::max<int64_t>(0, d.outer * d.inner);
  if (d.k == 0) {
    for (int64_t i = 0; i < nout; ++i) out[i] = store<T>(-std::numeric_limits<double>::infinity());
    return;
  }
  std::vector<A> maxes(static_cast<size_t>(nout));  // (outer, inner); infinite maxima shift by 0
  best_driver<true>(
      x, d, [](A v) { return v; }, false,
      [&](int64_t i, const Best<A>& b) { maxes[i] = std::isinf(b.val) ? A(0) : b.val; });
  sum_driver(
      x, d, maxes.data(), [](A v, A m) { return std::exp(v - m); },
      [&](int64_t i, double s) { out[i] = store<T>(std::log(s) + static_cast<double>(maxes[i])); });
}

template <class T>
void reduce_norm(const T* x, ReduceDims d, double p, T* out) {
  using A = acc_t<T>;
  if (std::isinf(p)) {
    best_driver<true>(
        x, d, [](A v) { return std::abs(v); }, false,
        [&](int64_t i, const Best<A>& b) { out[i] = static_cast<T>(b.val); });
  } else if (p == 2.0) {
    sum_driver(
        x, d, nullptr, [](A v, A) { return v * v; }, [&](int64_t i, double s) { out[i] = store<T>(std::sqrt(s)); });
  } else if (p == 1.0) {
    sum_driver(
        x, d, nullptr, [](A v, A) { return std::abs(v); }, [&](int64_t i, double s) { out[i] = store<T>(s); });
  } else {
    const A pa = static_cast<A>(p);
    sum_driver(
        x, d, nullptr, [pa](A v, A) { return std::pow(std::abs(v), pa); },
        [&](int64_t i, double s) { out[i] = store<T>(std::pow(s, 1.0 / p)); });
  }
}

#define ZAE_REDUCE_FLOATING(T)                                    \
  template void reduce_sum<T>(const T*, ReduceDims, T*);          \
  template void reduce_mean<T>(const T*, ReduceDims, T*);         \
  template void reduce_var<T>(const T*, ReduceDims, int64_t, T*); \
  template void reduce_logsumexp<T>(const T*, ReduceDims, T*);    \
  template void reduce_norm<T>(const T*, ReduceDims, double, T*);
ZAE_REDUCE_FLOATING(float)
ZAE_REDUCE_FLOATING(double)
ZAE_REDUCE_FLOATING(Half)
ZAE_REDUCE_FLOATING(BFloat16)
#undef ZAE_REDUCE_FLOATING

#define ZAE_REDUCE_INTEGRAL(T) template void reduce_sum_integral<T>(const T*, ReduceDims, int64_t*);
ZAE_REDUCE_INTEGRAL(int32_t)
ZAE_REDUCE_INTEGRAL(int64_t)
ZAE_REDUCE_INTEGRAL(uint8_t)
ZAE_REDUCE_INTEGRAL(bool)
#undef ZAE_REDUCE_INTEGRAL

#define ZAE_REDUCE_EXTREMA(T)                                         \
  template void reduce_amax<T>(const T*, ReduceDims, T*);             \
  template void reduce_amin<T>(const T*, ReduceDims, T*);             \
  template void reduce_argmax<T>(const T*, ReduceDims, T*, int64_t*); \
  template void reduce_argmin<T>(const T*, ReduceDims, T*, int64_t*);
ZAE_REDUCE_EXTREMA(float)
ZAE_REDUCE_EXTREMA(double)
ZAE_REDUCE_EXTREMA(Half)
ZAE_REDUCE_EXTREMA(BFloat16)
ZAE_REDUCE_EXTREMA(int32_t)
ZAE_REDUCE_EXTREMA(int64_t)
ZAE_REDUCE_EXTREMA(uint8_t)
ZAE_REDUCE_EXTREMA(bool)
#undef ZAE_REDUCE_EXTREMA

}  // namespace zae::kernels::cpu
