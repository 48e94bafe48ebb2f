// CPU pooling kernels (contract in pooling.h).
//
// Invariants:
// - Window bounds depend only on the output row (or column), so they are computed once
//   per call into small tables; the per-element loops carry no division.
// - Parallel over planes (each plane is written by one thread), so results do not
//   depend on the thread count.
#include "kernels/cpu/pooling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Planes per parallel chunk, for `work` element visits per plane.
int64_t plane_grain(int64_t work) { return std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(1, work)); }

// A window along one dim: elements begin, begin + step, ... < end (all inside the input).
struct Span {
  int64_t begin, end;
  int64_t padded;  // average pooling: the window's size clipped to the padded input only
};

// Max-pool spans: start at o * stride - pad, `kernel` taps `dilation` apart, clipped to [0, in).
std::vector<Span> max_spans(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  std::vector<Span> spans(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    int64_t begin = o * stride - pad;
    const int64_t end = std::min(begin + (kernel - 1) * dilation + 1, in);
    if (begin < 0) begin += ceil_div(-begin, dilation) * dilation;  // first tap inside the input
    spans[static_cast<size_t>(o)] = {begin, end, 0};
  }
  return spans;
}

// Average-pool spans: [o * stride - pad, + kernel) clipped to [0, in + pad) (padded), then to [0, in).
std::vector<Span> avg_spans(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  std::vector<Span> spans(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t begin = o * stride - pad;
    const int64_t end = std::min(begin + kernel, in + pad);
    spans[static_cast<size_t>(o)] = {std::max<int64_t>(begin, 0), std::min(end, in), end - begin};
  }
  return spans;
}

// Adaptive bins [floor(o * in / out), ceil((o + 1) * in / out)).
std::vector<Span> adaptive_spans(int64_t out, int64_t in) {
  std::vector<Span> spans(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t begin = o * in / out, end = ceil_div((o + 1) * in, out);
    spans[static_cast<size_t>(o)] = {begin, end, end - begin};
  }
  return spans;
}

// One kernel tap over the outputs [lo, hi) of a row: y = max(y, v) with v = row[ow * sw + off],
// NaN winning, and the index following. Branch-free so that it vectorizes (`|`, not
// `||`; restrict parameters, which GCC honours where it ignores restrict locals).
template <class T>
void max_tap(const T* __restrict row, int64_t off, T* __restrict y, int64_t* __restrict idx, int64_t lo, int64_t hi,
             int64_t sw, int64_t base) {
  using Acc = acc_t<T>;
  for (int64_t ow = lo; ow < hi; ++ow) {
    const T v = row[ow * sw + off];
    const Acc a = Acc(v);
    const bool take = (a > Acc(y[ow])) | (a != a);
    y[ow] = take ? v : y[ow];
    idx[ow] = take ? base + ow * sw : idx[ow];
  }
}

// Fast path of max_pool2d_forward (float) for 2x2 windows, stride 2, no padding, dilation
// 1, every window inside the input, Wo >= 4: V outputs of a row at a time with GCC/Clang
// vector extensions (portable; the compiler lowers them to the target's SIMD), the last
// chunk of a row overlapping the previous one. The auto-vectorizer cannot do this: rows
// are short (Wo = 7 or 14 in a small CNN) and its scalar remainder branches on every
// compare. The four taps are visited in the general path's order with the same rule (a
// later tap wins if greater or NaN), so values and indices are identical to it.
template <int V>
struct PoolVec;
template <>
struct PoolVec<8> {
  typedef float F __attribute__((vector_size(32)));   // V outputs
  typedef float F2 __attribute__((vector_size(64)));  // 2V inputs of a row
  typedef int32_t I __attribute__((vector_size(32)));
  typedef int64_t L __attribute__((vector_size(64)));
};
template <>
struct PoolVec<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef float F2 __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(16)));
  typedef int64_t L __attribute__((vector_size(32)));
};

// Outputs [0, V) of rows r0 (top) and r1 (bottom) of the windows; base = flat index of r0[0].
template <int V>
void max_pool2x2_chunk(const float* r0, const float* r1, float* y, int64_t* idx, int64_t base, int64_t W) {
  using F = typename PoolVec<V>::F;
  using F2 = typename PoolVec<V>::F2;
  using I = typename PoolVec<V>::I;
  using L = typename PoolVec<V>::L;
  F2 top, bottom;
  std::memcpy(&top, r0, sizeof(F2));
  std::memcpy(&bottom, r1, sizeof(F2));
  F a0, a1, a2, a3;  // taps (0,0), (0,1), (1,0), (1,1) of each window
  if constexpr (V == 8) {
    a0 = __builtin_shufflevector(top, top, 0, 2, 4, 6, 8, 10, 12, 14);
    a1 = __builtin_shufflevector(top, top, 1, 3, 5, 7, 9, 11, 13, 15);
    a2 = __builtin_shufflevector(bottom, bottom, 0, 2, 4, 6, 8, 10, 12, 14);
    a3 = __builtin_shufflevector(bottom, bottom, 1, 3, 5, 7, 9, 11, 13, 15);
  } else {
    a0 = __builtin_shufflevector(top, top, 0, 2, 4, 6);
    a1 = __builtin_shufflevector(top, top, 1, 3, 5, 7);
    a2 = __builtin_shufflevector(bottom, bottom, 0, 2, 4, 6);
    a3 = __builtin_shufflevector(bottom, bottom, 1, 3, 5, 7);
  }
  F m = a0;
  I k = {};  // winning tap 0..3
  I t = (a1 > m) | (a1 != a1);
  m = t ? a1 : m;
  k = t ? 1 : k;
  t = (a2 > m) | (a2 != a2);
  m = t ? a2 : m;
  k = t ? 2 : k;
  t = (a3 > m) | (a3 != a3);
  m = t ? a3 : m;
  k = t ? 3 : k;
  std::memcpy(y, &m, sizeof(F));
  L col;
  for (int j = 0; j < V; ++j) col[j] = base + 2 * j;
  const L kk = __builtin_convertvector(k, L);
  const L id = col + (kk & 1) + (kk >> 1) * W;
  std::memcpy(idx, &id, sizeof(L));
}

template <int V>
void max_pool2x2_row(const float* r0, const float* r1, float* y, int64_t* idx, int64_t n, int64_t base, int64_t W) {
  int64_t ow = 0;
  for (; ow + V <= n; ow += V) max_pool2x2_chunk<V>(r0 + 2 * ow, r1 + 2 * ow, y + ow, idx + ow, base + 2 * ow, W);
  if (ow < n) {
    ow = n - V;  // recompute an overlapping last chunk (n >= V)
    max_pool2x2_chunk<V>(r0 + 2 * ow, r1 + 2 * ow, y + ow, idx + ow, base + 2 * ow, W);
  }
}

int64_t avg_divisor(const Span& h, const Span& w, bool count_include_pad, int64_t divisor_override) {
  if (divisor_override > 0) return divisor_override;
  if (count_include_pad) return h.padded * w.padded;
  return (h.end - h.begin) * (w.end - w.begin);
}

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& s) {
  using Acc = acc_t<T>;
  const std::vector<Span> hs = max_spans(s.out_h, s.in_h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h);
  const std::vector<Span> ws = max_spans(s.out_w, s.in_w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w);
  // For kernel column j: the outputs ow whose tap ow * sw + j * dw - pw lies in [0, W).
  std::vector<Span> tap_cols(static_cast<size_t>(s.kernel_w));
  for (int64_t j = 0; j < s.kernel_w; ++j) {
    const int64_t off = j * s.dilation_w - s.pad_w;
    int64_t lo = off >= 0 ? 0 : ceil_div(-off, s.stride_w);
    int64_t hi = s.in_w - 1 - off < 0 ? 0 : (s.in_w - 1 - off) / s.stride_w + 1;
    lo = std::min(lo, s.out_w);
    hi = std::min(hi, s.out_w);
    tap_cols[static_cast<size_t>(j)] = {lo, std::max(lo, hi), off};
  }
  const int64_t H = s.in_h, W = s.in_w, Wo = s.out_w, sw = s.stride_w;
  const int64_t in_plane = H * W, out_plane = s.out_h * Wo;
  if constexpr (std::is_same_v<T, float>) {
    const bool pool2x2 = s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 && s.pad_h == 0 &&
                         s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1 && 2 * s.out_h <= H &&
                         2 * Wo <= W && Wo >= 4;
    if (pool2x2) {
      parallel_for(s.planes, plane_grain(out_plane * 4), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t oh = 0; oh < s.out_h; ++oh) {
            const float* r0 = x + p * in_plane + 2 * oh * W;  // (2, W)
            float* yr = y + p * out_plane + oh * Wo;
            int64_t* ir = indices + p * out_plane + oh * Wo;
            if (Wo >= 8) {
              max_pool2x2_row<8>(r0, r0 + W, yr, ir, Wo, 2 * oh * W, W);
            } else {
              max_pool2x2_row<4>(r0, r0 + W, yr, ir, Wo, 2 * oh * W, W);
            }
          }
      });
      return;
    }
  }
  parallel_for(s.planes, plane_grain(out_plane * s.kernel_h * s.kernel_w), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;  // (H, W)
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        // The output row doubles as the running maximum; taps are visited in the window's
        // row-major order for every output, as PyTorch's per-window loop does.
        T* yr = y + p * out_plane + oh * Wo;              // (Wo)
        int64_t* ir = indices + p * out_plane + oh * Wo;  // (Wo)
        const int64_t first_row = hs[static_cast<size_t>(oh)].begin;
        for (int64_t ow = 0; ow < Wo; ++ow) {
          yr[ow] = T(-std::numeric_limits<Acc>::infinity());
          ir[ow] = first_row * W + ws[static_cast<size_t>(ow)].begin;
        }
        for (int64_t i = 0; i < s.kernel_h; ++i) {
          const int64_t ih = oh * s.stride_h - s.pad_h + i * s.dilation_h;
          if (ih < 0 || ih >= H) continue;
          const T* row = xp + ih * W;
          for (const Span& tap : tap_cols) {
            const int64_t base = ih * W + tap.padded;  // flat index of the tap at ow = 0
            max_tap(row, tap.padded, yr, ir, tap.begin, tap.end, sw, base);
          }
        }
      }
    }
  });
}

template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& s) {
  using Acc = acc_t<T>;
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  parallel_for(s.planes, plane_grain(out_plane + in_plane), [&](int64_t p0, int64_t p1) {
    std::vector<Acc> acc(static_cast<size_t>(in_plane));
    for (int64_t p = p0; p < p1; ++p) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      const T* gp = dy + p * out_plane;
      const int64_t* ip = indices + p * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) {
        const int64_t i = ip[o];
        if (i >= 0 && i < in_plane) acc[static_cast<size_t>(i)] += Acc(gp[o]);
      }
      T* dp = dx + p * in_plane;
      for (int64_t i = 0; i < in_plane; ++i) dp[i] = T(acc[static_cast<size_t>(i)]);
    }
  });
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool count_include_pad, int64_t divisor_override) {
  using Acc = acc_t<T>;
  const std::vector<Span> hs = avg_spans(s.out_h, s.in_h, s.kernel_h, s.stride_h, s.pad_h);
  const std::vector<Span> ws = avg_spans(s.out_w, s.in_w, s.kernel_w, s.stride_w, s.pad_w);
  const int64_t W = s.in_w, in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  parallel_for(s.planes, plane_grain(out_plane * s.kernel_h * s.kernel_w), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;  // (H, W)
      T* yp = y + p * out_plane;       // (Ho, Wo)
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        const Span& h = hs[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < s.out_w; ++ow) {
          const Span& w = ws[static_cast<size_t>(ow)];
          if (h.begin >= h.end || w.begin >= w.end) {
            yp[oh * s.out_w + ow] = T(Acc(0));
            continue;
          }
          Acc sum(0);
          for (int64_t ih = h.begin; ih < h.end; ++ih) {
            const T* row = xp + ih * W;
            for (int64_t iw = w.begin; iw < w.end; ++iw) sum += Acc(row[iw]);
          }
          const int64_t div = avg_divisor(h, w, count_include_pad, divisor_override);
          yp[oh * s.out_w + ow] = T(sum / Acc(div));
        }
      }
    }
  });
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool count_include_pad, int64_t divisor_override) {
  using Acc = acc_t<T>;
  const std::vector<Span> hs = avg_spans(s.out_h, s.in_h, s.kernel_h, s.stride_h, s.pad_h);
  const std::vector<Span> ws = avg_spans(s.out_w, s.in_w, s.kernel_w, s.stride_w, s.pad_w);
  const int64_t W = s.in_w, in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  parallel_for(s.planes, plane_grain(out_plane * s.kernel_h * s.kernel_w + in_plane), [&](int64_t p0, int64_t p1) {
    std::vector<Acc> acc(static_cast<size_t>(in_plane));
    for (int64_t p = p0; p < p1; ++p) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      const T* gp = dy + p * out_plane;  // (Ho, Wo)
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        const Span& h = hs[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < s.out_w; ++ow) {
          const Span& w = ws[static_cast<size_t>(ow)];
          if (h.begin >= h.end || w.begin >= w.end) continue;
          const Acc g = Acc(gp[oh * s.out_w + ow]) / Acc(avg_divisor(h, w, count_include_pad, divisor_override));
          for (int64_t ih = h.begin; ih < h.end; ++ih) {
            Acc* row = acc.data() + ih * W;
            for (int64_t iw = w.begin; iw < w.end; ++iw) row[iw] += g;
          }
        }
      }
      T* dp = dx + p * in_plane;
      for (int64_t i = 0; i < in_plane; ++i) dp[i] = T(acc[static_cast<size_t>(i)]);
    }
  });
}

template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w) {
  using Acc = acc_t<T>;
  const std::vector<Span> hs = adaptive_spans(out_h, in_h), ws = adaptive_spans(out_w, in_w);
  const int64_t in_plane = in_h * in_w, out_plane = out_h * out_w;
  parallel_for(planes, plane_grain(in_plane + out_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;  // (H, W)
      T* yp = y + p * out_plane;       // (Ho, Wo)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const Span& h = hs[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const Span& w = ws[static_cast<size_t>(ow)];
          Acc sum(0);
          for (int64_t ih = h.begin; ih < h.end; ++ih) {
            const T* row = xp + ih * in_w;
            for (int64_t iw = w.begin; iw < w.end; ++iw) sum += Acc(row[iw]);
          }
          yp[oh * out_w + ow] = T(sum / Acc(h.padded * w.padded));
        }
      }
    }
  });
}

template <class T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                  int64_t out_w) {
  using Acc = acc_t<T>;
  const std::vector<Span> hs = adaptive_spans(out_h, in_h), ws = adaptive_spans(out_w, in_w);
  const int64_t in_plane = in_h * in_w, out_plane = out_h * out_w;
  parallel_for(planes, plane_grain(2 * in_plane + out_plane), [&](int64_t p0, int64_t p1) {
    std::vector<Acc> acc(static_cast<size_t>(in_plane));
    for (int64_t p = p0; p < p1; ++p) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      const T* gp = dy + p * out_plane;  // (Ho, Wo)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const Span& h = hs[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const Span& w = ws[static_cast<size_t>(ow)];
          const Acc g = Acc(gp[oh * out_w + ow]) / Acc(h.padded * w.padded);
          for (int64_t ih = h.begin; ih < h.end; ++ih) {
            Acc* row = acc.data() + ih * in_w;
            for (int64_t iw = w.begin; iw < w.end; ++iw) row[iw] += g;
          }
        }
      }
      T* dp = dx + p * in_plane;
      for (int64_t i = 0; i < in_plane; ++i) dp[i] = T(acc[static_cast<size_t>(i)]);
    }
  });
}

#define ZAE_INSTANTIATE_POOLING(T)                                                                              \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const PoolShape&);                                \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const PoolShape&);                         \
  template void avg_pool2d_forward<T>(const T*, T*, const PoolShape&, bool, int64_t);                           \
  template void avg_pool2d_backward<T>(const T*, T*, const PoolShape&, bool, int64_t);                          \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);      \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);
ZAE_INSTANTIATE_POOLING(float)
ZAE_INSTANTIATE_POOLING(double)
ZAE_INSTANTIATE_POOLING(Half)
ZAE_INSTANTIATE_POOLING(BFloat16)
#undef ZAE_INSTANTIATE_POOLING

}  // namespace zae::kernels::cpu
