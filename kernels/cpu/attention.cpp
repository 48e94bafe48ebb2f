// CPU flash attention forward and backward (contract in attention.h).
// Tiles live in acc_t buffers: a query tile Qs (kBlockQ, D) pre-multiplied by scale, a
// key tile transposed Kt (D, kBlockK) and a value tile V (kBlockK, D). Every product of
// tiles is one call of tile_gemm, whose register-blocked micro-kernel (6 rows by
// kVecWidth columns, innermost loop over contiguous columns, A read plain or transposed)
// the compiler vectorises. The softmax rows use a vectorisable float exp (exp_of) and
// lane-split max / sum reductions. Tasks are claimed dynamically from the CPU pool.
// Measured (benchmarks/bench_cpu_attention.cpp, causal fwd + bwd float32, one thread,
// loaded 2-core machine): 1.65x the composed matmul / softmax path at (8, 4, 128, 32) and
// 2.5x at (1, 12, 1024, 64).
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace zae::kernels::cpu {

namespace {

constexpr int64_t kBlockQ = 64;  // query rows per tile
constexpr int64_t kBlockK = 64;  // keys per tile

// Columns per micro-tile: two 64-byte vectors of A.
template <class A>
constexpr int kVecWidth = static_cast<int>(128 / sizeof(A));

// a * b + c for the tile products: one fused multiply-add where the build targets a CPU
// with FMA (-march=native on x86-64 since Haswell), else a multiply and an add. This is
// the one place the CPU kernels use FMA on purpose (the build passes -ffp-contract=off):
// the tile GEMMs are the attention kernel's hot loop and FMA doubles their throughput.
// Results are reproducible for a given build, and the tests' tolerances cover both.
template <class A>
inline A madd(A a, A b, A c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// C (R, W) = [C +] op(A) (R, kk) . B (kk, W; row stride ldb), W <= kW; op(A) = A stored
// (R, kk) with row stride lda, or with kTransA A^T for A stored (kk, R) with row stride lda.
// With kFull the width is the compile-time kW, so the accumulators stay in registers.
template <class A, bool kTransA, int R, int kW, bool kFull>
inline void micro_tile(const A* a, int64_t lda, const A* b, int64_t ldb, A* c, int64_t ldc, int64_t kk, int w,
                       bool accumulate) {
  const int width = kFull ? kW : w;
  A acc[R][kW];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kW; ++j) acc[r][j] = (accumulate && j < width) ? c[r * ldc + j] : A(0);
  for (int64_t p = 0; p < kk; ++p) {
    const A* br = b + p * ldb;  // (W)
    for (int r = 0; r < R; ++r) {
      const A ar = kTransA ? a[p * lda + r] : a[r * lda + p];
      if constexpr (kFull) {
        for (int j = 0; j < kW; ++j) acc[r][j] = madd(ar, br[j], acc[r][j]);
      } else {
        for (int j = 0; j < width; ++j) acc[r][j] = madd(ar, br[j], acc[r][j]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < width; ++j) c[r * ldc + j] = acc[r][j];
}

template <class A, bool kTransA, int R>
inline void tile_rows(const A* a, int64_t lda, const A* b, int64_t ldb, A* c, int64_t ldc, int64_t n, int64_t kk,
                      bool accumulate) {
  constexpr int kW = kVecWidth<A>;
  int64_t j = 0;
  for (; j + kW <= n; j += kW)
    micro_tile<A, kTransA, R, kW, true>(a, lda, b + j, ldb, c + j, ldc, kk, kW, accumulate);
  if (j < n)
    micro_tile<A, kTransA, R, kW, false>(a, lda, b + j, ldb, c + j, ldc, kk, static_cast<int>(n - j), accumulate);
}

// C (m, n) = [C +] op(A) (m, kk) . B (kk, n), all row-major with the given row strides;
// op(A) = A (m, kk), or with kTransA A^T for A stored (kk, m).
template <class A, bool kTransA = false>
void tile_gemm(const A* a, int64_t lda, const A* b, int64_t ldb, A* c, int64_t ldc, int64_t m, int64_t n, int64_t kk,
               bool accumulate) {
  int64_t i = 0;
  auto rows = [&]<int R>(std::integral_constant<int, R>) {
    tile_rows<A, kTransA, R>(a + (kTransA ? i : i * lda), lda, b, ldb, c + i * ldc, ldc, n, kk, accumulate);
  };
  for (; i + 6 <= m; i += 6) rows(std::integral_constant<int, 6>{});
  switch (m - i) {
    case 5: rows(std::integral_constant<int, 5>{}); break;
    case 4: rows(std::integral_constant<int, 4>{}); break;
    case 3: rows(std::integral_constant<int, 3>{}); break;
    case 2: rows(std::integral_constant<int, 2>{}); break;
    case 1: rows(std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

// dst (cols, rows) = src (rows, cols)^T, src with row stride lds, dst with row stride ldd.
template <class A, class S>
void transpose_into(const S* src, int64_t lds, int64_t rows, int64_t cols, A* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = static_cast<A>(src[r * lds + c]);
}

// dst (rows, D) = factor * src (rows, D), widened to A.
template <class A, class S>
void load_rows(const S* src, int64_t rows, int64_t d, A factor, A* dst) {
  for (int64_t i = 0; i < rows * d; ++i) dst[i] = static_cast<A>(src[i]) * factor;
}

// exp for the softmax rows. float: a branch-free Cody-Waite reduction x = n ln2 + r
// (|r| <= ln2 / 2) and a degree-7 Taylor polynomial (relative error ~1e-7, about one
// ulp), which the compiler vectorises; inputs below -87 give 0 (exp(-inf) = 0, as the
// masking needs), NaN stays NaN. Inputs here are <= 0 up to rounding (s - max, s - lse).
// double: std::exp (the float64 path is the exact reference).
inline float exp_of(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);  // keeps NaN
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float two_n = std::bit_cast<float>(static_cast<int32_t>((static_cast<int32_t>(n) + 127) << 23));
  return x < -87.0f ? 0.0f : p * two_n;
}
inline double exp_of(double x) { return std::exp(x); }

// Lane-split reductions over x (n): a fixed number of partial results combined in a fixed
// order, so they vectorise and do not depend on anything but n.
constexpr int kLanes = 16;
template <class A>
A lane_sum(const A* x, int64_t n) {
  A part[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int u = 0; u < kLanes; ++u) part[u] += x[j + u];
  A sum = 0;
  for (; j < n; ++j) sum += x[j];
  for (int u = 0; u < kLanes; ++u) sum += part[u];
  return sum;
}
template <class A>
A lane_max(const A* x, int64_t n, A init) {
  A part[kLanes];
  for (int u = 0; u < kLanes; ++u) part[u] = init;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int u = 0; u < kLanes; ++u) part[u] = part[u] < x[j + u] ? x[j + u] : part[u];
  A mx = init;
  for (; j < n; ++j) mx = mx < x[j] ? x[j] : mx;
  for (int u = 0; u < kLanes; ++u) mx = mx < part[u] ? part[u] : mx;
  return mx;
}

// Runs body(begin, end) over [0, items) in tasks of `grain` items that the pool's threads
// claim one at a time (so uneven causal work balances out). Each item's result depends
// only on the item, never on the thread or the grouping.
template <class Body>
void run_items(int64_t items, int64_t grain, Body&& body) {
  const int64_t tasks = (items + grain - 1) / grain;
  if (tasks > 1 && num_threads() > 1 && !in_parallel()) {
    run_tasks(tasks, [&](int64_t t) { body(t * grain, std::min(items, (t + 1) * grain)); });
  } else {
    body(int64_t{0}, items);
  }
}

// End of the keys that query rows [i0, i1) see: all, or with causal those j < i1.
inline int64_t key_end(const AttentionDims& s, int64_t i1) { return s.causal ? std::min(s.tk, i1) : s.tk; }

// Whether the tile (queries [i0, ...), keys [j0, j0 + bc)) needs the causal mask.
inline bool tile_masked(const AttentionDims& s, int64_t i0, int64_t j0, int64_t bc) {
  return s.causal && j0 + bc - 1 > i0;
}

}  // namespace

template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* o, acc_t<T>* lse, const AttentionDims& s) {
  using A = acc_t<T>;
  const int64_t D = s.d, nqb = (s.tq + kBlockQ - 1) / kBlockQ;
  const int64_t items = s.batch_heads * nqb;
  if (items == 0 || D == 0) {
    // D == 0: S is all zeros, O has no elements, lse = log(Tk) (or log(i + 1) when causal).
    for (int64_t h = 0; h < s.batch_heads && D == 0; ++h)
      for (int64_t i = 0; i < s.tq; ++i)
        lse[h * s.tq + i] = std::log(static_cast<A>(s.causal ? std::min(i + 1, s.tk) : s.tk));
    return;
  }
  const A scale = static_cast<A>(s.scale);
  const A neg_inf = -std::numeric_limits<A>::infinity();
  // Work per item ~ kBlockQ * Tk * D multiply-adds: group small items into tasks of ~1M flops.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, kBlockQ * s.tk * D / 16));
  run_items(items, grain, [&](int64_t begin, int64_t end) {
    std::vector<A> buf(static_cast<size_t>(kBlockQ * D * 2 + kBlockK * D * 2 + kBlockQ * kBlockK + kBlockQ * 2));
    A* qs = buf.data();             // (kBlockQ, D) scale * q
    A* acc = qs + kBlockQ * D;      // (kBlockQ, D) unnormalised O
    A* kt = acc + kBlockQ * D;      // (D, kBlockK) k^T
    A* vt = kt + kBlockK * D;       // (kBlockK, D) v
    A* sc = vt + kBlockK * D;       // (kBlockQ, kBlockK) scores, then probabilities
    A* m = sc + kBlockQ * kBlockK;  // (kBlockQ) running max
    A* l = m + kBlockQ;             // (kBlockQ) running sum
    for (int64_t item = begin; item < end; ++item) {
      // Later query blocks first: with causal they carry the most keys.
      const int64_t h = item / nqb, i0 = (nqb - 1 - item % nqb) * kBlockQ, br = std::min(kBlockQ, s.tq - i0);
      const T* qh = q + (h * s.tq + i0) * D;  // (br, D)
      const T* kh = k + h * s.tk * D;         // (Tk, D)
      const T* vh = v + h * s.tk * D;         // (Tk, D)
      load_rows(qh, br, D, scale, qs);
      std::fill(acc, acc + br * D, A(0));
      std::fill(m, m + br, neg_inf);
      std::fill(l, l + br, A(0));
      const int64_t jend = key_end(s, i0 + br);
      for (int64_t j0 = 0; j0 < jend; j0 += kBlockK) {
        const int64_t bc = std::min(kBlockK, jend - j0);
        transpose_into(kh + j0 * D, D, bc, D, kt, kBlockK);
        load_rows(vh + j0 * D, bc, D, A(1), vt);
        tile_gemm(qs, D, kt, kBlockK, sc, kBlockK, br, bc, D, false);  // S (br, bc)
        const bool masked = tile_masked(s, i0, j0, bc);
        for (int64_t i = 0; i < br; ++i) {
          A* srow = sc + i * kBlockK;  // (bc)
          if (masked)
            for (int64_t j = std::max<int64_t>(0, i0 + i - j0 + 1); j < bc; ++j) srow[j] = neg_inf;
          const A mx = lane_max(srow, bc, m[i]);
          if (mx == neg_inf) {  // no visible key in this tile yet (not reachable with aligned blocks)
            std::fill(srow, srow + bc, A(0));
            continue;
          }
          const A alpha = exp_of(m[i] - mx);
          for (int64_t j = 0; j < bc; ++j) srow[j] = exp_of(srow[j] - mx);
          l[i] = l[i] * alpha + lane_sum(srow, bc);
          m[i] = mx;
          A* arow = acc + i * D;
          for (int64_t d = 0; d < D; ++d) arow[d] *= alpha;
        }
        tile_gemm(sc, kBlockK, vt, D, acc, D, br, D, bc, true);  // O += P V
      }
      T* oh = o + (h * s.tq + i0) * D;  // (br, D)
      A* lh = lse + h * s.tq + i0;       // (br)
      for (int64_t i = 0; i < br; ++i) {
        const A inv = A(1) / l[i];
        for (int64_t d = 0; d < D; ++d) oh[i * D + d] = static_cast<T>(acc[i * D + d] * inv);
        lh[i] = m[i] + std::log(l[i]);
      }
    }
  });
}

template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* d_o, const acc_t<T>* lse, T* dq,
                        T* dk, T* dv, const AttentionDims& s) {
  using A = acc_t<T>;
  const int64_t D = s.d, tq = s.tq, tk = s.tk;
  if (s.batch_heads == 0) return;
  if (D == 0 || tq == 0) {
    // No dims: every gradient is empty or (no queries) zero.
    std::fill(dk, dk + s.batch_heads * tk * D, T(0.0f));
    std::fill(dv, dv + s.batch_heads * tk * D, T(0.0f));
    return;
  }
  const A scale = static_cast<A>(s.scale);
  run_items(s.batch_heads, 1, [&](int64_t begin, int64_t end) {
    // Per head: whole-head acc_t copies (Tq or Tk rows of D), then per-tile scratch.
    std::vector<A> buf(static_cast<size_t>(tq * D * 3 + tk * D + tq + kBlockK * D * 4 + kBlockQ * kBlockK * 2));
    A* qs = buf.data();             // (Tq, D) scale * q
    A* gout = qs + tq * D;          // (Tq, D) dO
    A* dqa = gout + tq * D;         // (Tq, D) dq / scale, accumulated over key blocks
    A* kf = dqa + tq * D;           // (Tk, D) k
    A* dd = kf + tk * D;            // (Tq) D_i = rowsum(dO * O)
    A* kt = dd + tq;                // (D, kBlockK) k^T of the key block
    A* vt = kt + kBlockK * D;       // (D, kBlockK) v^T of the key block
    A* dka = vt + kBlockK * D;      // (kBlockK, D) dk of the key block
    A* dva = dka + kBlockK * D;     // (kBlockK, D) dv of the key block
    A* p = dva + kBlockK * D;       // (kBlockQ, kBlockK) P
    A* ds = p + kBlockQ * kBlockK;  // (kBlockQ, kBlockK) dP, then dS
    for (int64_t h = begin; h < end; ++h) {
      const T* qh = q + h * tq * D;
      const T* kh = k + h * tk * D;
      const T* vh = v + h * tk * D;
      const T* oh = o + h * tq * D;
      const T* gh = d_o + h * tq * D;
      const A* lh = lse + h * tq;
      load_rows(qh, tq, D, scale, qs);
      load_rows(gh, tq, D, A(1), gout);
      load_rows(kh, tk, D, A(1), kf);
      std::fill(dqa, dqa + tq * D, A(0));
      for (int64_t i = 0; i < tq; ++i) {
        A sum = 0;
        for (int64_t d = 0; d < D; ++d) sum += gout[i * D + d] * static_cast<A>(oh[i * D + d]);
        dd[i] = sum;
      }
      for (int64_t j0 = 0; j0 < tk; j0 += kBlockK) {
        const int64_t bc = std::min(kBlockK, tk - j0);
        transpose_into(kf + j0 * D, D, bc, D, kt, kBlockK);
        transpose_into(vh + j0 * D, D, bc, D, vt, kBlockK);
        std::fill(dka, dka + bc * D, A(0));
        std::fill(dva, dva + bc * D, A(0));
        // Causal: query rows i < j0 see none of these keys.
        const int64_t first_block = s.causal ? j0 / kBlockQ : 0;
        for (int64_t i0 = first_block * kBlockQ; i0 < tq; i0 += kBlockQ) {
          const int64_t br = std::min(kBlockQ, tq - i0);
          tile_gemm(qs + i0 * D, D, kt, kBlockK, p, kBlockK, br, bc, D, false);       // S (br, bc)
          tile_gemm(gout + i0 * D, D, vt, kBlockK, ds, kBlockK, br, bc, D, false);  // dP (br, bc)
          const bool masked = tile_masked(s, i0, j0, bc);
          for (int64_t i = 0; i < br; ++i) {
            A* prow = p + i * kBlockK;   // (bc)
            A* dsrow = ds + i * kBlockK;  // (bc)
            const A li = lh[i0 + i], di = dd[i0 + i];
            const int64_t jvis = masked ? std::clamp<int64_t>(i0 + i - j0 + 1, 0, bc) : bc;
            for (int64_t j = 0; j < jvis; ++j) {
              prow[j] = exp_of(prow[j] - li);
              dsrow[j] = prow[j] * (dsrow[j] - di);
            }
            for (int64_t j = jvis; j < bc; ++j) prow[j] = dsrow[j] = A(0);
          }
          tile_gemm<A, true>(p, kBlockK, gout + i0 * D, D, dva, D, bc, D, br, true);  // dv += P^T dO
          tile_gemm<A, true>(ds, kBlockK, qs + i0 * D, D, dka, D, bc, D, br, true);   // dk += dS^T (scale q)
          tile_gemm(ds, kBlockK, kf + j0 * D, D, dqa + i0 * D, D, br, D, bc, true);       // dq/scale += dS k
        }
        T* dkh = dk + (h * tk + j0) * D;
        T* dvh = dv + (h * tk + j0) * D;
        for (int64_t e = 0; e < bc * D; ++e) {
          dkh[e] = static_cast<T>(dka[e]);
          dvh[e] = static_cast<T>(dva[e]);
        }
      }
      T* dqh = dq + h * tq * D;
      for (int64_t e = 0; e < tq * D; ++e) dqh[e] = static_cast<T>(dqa[e] * scale);
    }
  });
}

#define ZAE_CPU_ATTENTION(T)                                                                          \
  template void attention_forward<T>(const T*, const T*, const T*, T*, acc_t<T>*, const AttentionDims&); \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, const acc_t<T>*, T*, T*, \
                                      T*, const AttentionDims&);
ZAE_CPU_ATTENTION(float)
ZAE_CPU_ATTENTION(double)
ZAE_CPU_ATTENTION(Half)
ZAE_CPU_ATTENTION(BFloat16)
#undef ZAE_CPU_ATTENTION

}  // namespace zae::kernels::cpu
