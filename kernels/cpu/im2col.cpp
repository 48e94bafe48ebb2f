// im2col / col2im and the im2col + GEMM convolution drivers (contract in im2col.h).
//
// Invariants:
// - Column rows are visited as (ki, kj) outer, channel inner: the valid output range
//   of a (ki, kj) pair is the same for every channel, so the divisions that find it run
//   kH * kW times per image, never per element.
// - All workspaces are allocated before a parallel region starts (nothing inside one
//   may throw). Thread ranges are contiguous image ranges [N*r/R, N*(r+1)/R); calls
//   below kParallelConvMacs multiply-adds use one range.
// - Parallel ranges run as tasks of the CPU thread pool (kernels/cpu/thread_pool.h);
//   OpenBLAS's thread count is set to 1 for the span of a parallel call and restored
//   after. Callers drive the engine from one thread.
#include "kernels/cpu/im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/numeric.h"

#if defined(ZAE_WITH_OPENBLAS) && ZAE_WITH_OPENBLAS
#include <cblas.h>
#define ZAE_IM2COL_OPENBLAS 1
#else
#define ZAE_IM2COL_OPENBLAS 0
#endif

namespace zae::kernels::cpu {
namespace {

// Images with fewer output positions than this are packed side by side into one GEMM
// (floor(kTargetColumns / L) of them). Measured on the 2-core dev machine: packing pays
// for small planes (7x7, 4x4: up to 13% faster) and costs ~1% from 14x14 up.
constexpr int64_t kTargetColumns = 384;
// Upper bound of one packed column matrix, so that it stays in a core's L2 cache.
constexpr int64_t kColumnBudgetBytes = 512 * 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// [lo, hi): the output positions o in [0, out) whose input o * stride + offset lies in [0, in).
struct Range {
  int64_t lo, hi;
};
Range valid_range(int64_t offset, int64_t stride, int64_t in, int64_t out) {
  int64_t lo = offset >= 0 ? 0 : ceil_div(-offset, stride);
  const int64_t last = in - 1 - offset;  // o * stride <= last
  int64_t hi = last < 0 ? 0 : last / stride + 1;
  lo = std::min(lo, out);
  hi = std::min(hi, out);
  return {lo, std::max(lo, hi)};
}

// Holds OpenBLAS at one thread while pool threads each run their own GEMMs.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
#if ZAE_IM2COL_OPENBLAS
    saved_ = openblas_get_num_threads();  // any OpenBLAS build: pool tasks are not OpenMP regions
    if (saved_ > 1) openblas_set_num_threads(1);
#endif
  }
  ~SingleThreadedBlas() {
#if ZAE_IM2COL_OPENBLAS
    if (saved_ > 1) openblas_set_num_threads(saved_);
#endif
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  [[maybe_unused]] int saved_ = 1;
};

// Below this many multiply-adds a convolution runs on the calling thread: waking a
// worker costs more than the work (a 16-image 8x8 conv step went from 0.1 ms to 24 ms
// with 2 threads on a loaded 2-core machine, every fork waiting for a time slice).
constexpr int64_t kParallelConvMacs = int64_t{1} << 21;

// How many contiguous image ranges (one per thread) to split a batch into; `macs` is
// the whole call's multiply-add count.
int64_t range_count(int64_t batch, int64_t macs) {
  if (in_parallel() || macs < kParallelConvMacs) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(num_threads(), batch));
}

// Runs fn(r) for r in [0, ranges) on the thread pool (kernels/cpu/thread_pool.h).
// fn must not throw.
template <class Fn>
void for_each_range(int64_t ranges, Fn&& fn) {
  if (ranges > 1) {
    SingleThreadedBlas single;
    run_tasks(ranges, [&](int64_t r) { fn(r); });
    return;
  }
  for (int64_t r = 0; r < ranges; ++r) fn(r);
}

// Images per GEMM: enough to make it kTargetColumns wide, within the column budget.
int64_t images_per_gemm(const ConvShape& s, int64_t per_range, size_t elem) {
  if (s.is_pointwise()) return 1;  // the image is its own column matrix
  const int64_t L = s.out_plane();
  const int64_t image_bytes = std::max<int64_t>(1, s.col_rows() * L * static_cast<int64_t>(elem));
  const int64_t by_width = kTargetColumns / L;
  const int64_t by_budget = std::max<int64_t>(1, kColumnBudgetBytes / image_bytes);
  return std::clamp<int64_t>(std::min(by_width, by_budget), 1, std::max<int64_t>(1, per_range));
}

// dst[i] += src[i] for i < n (restrict parameters: GCC vectorizes it without a runtime alias check).
template <class T>
void add_run(T* __restrict dst, const T* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// Sum of row[0, n) in a fixed order: kLanes interleaved partial sums (a vectorizable
// reduction without reassociation by the compiler), then the lanes and the tail.
template <class T, class Acc>
Acc row_sum(const T* row, int64_t n) {
  constexpr int64_t kLanes = 16;
  Acc lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= n; l += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += Acc(row[l + j]);
  Acc sum(0);
  for (int64_t j = 0; j < kLanes; ++j) sum += lanes[j];
  for (; l < n; ++l) sum += Acc(row[l]);
  return sum;
}

// Image range of thread range r.
Range image_range(int64_t batch, int64_t ranges, int64_t r) { return {batch * r / ranges, batch * (r + 1) / ranges}; }

}  // namespace

template <class T>
void im2col(const T* x, const ConvShape& s, T* cols, int64_t ld) {
  const int64_t H = s.height, W = s.width, Ho = s.out_h, Wo = s.out_w, sw = s.stride_w;
  for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
    const int64_t ih_off = ki * s.dilation_h - s.pad_h;  // ih = oh * sh + ih_off
    const Range rh = valid_range(ih_off, s.stride_h, H, Ho);
    for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
      const int64_t iw_off = kj * s.dilation_w - s.pad_w;  // iw = ow * sw + iw_off
      const Range rw = valid_range(iw_off, sw, W, Wo);
      const int64_t n_valid = rw.hi - rw.lo;
      // Stride 1 with Wo == W: the valid block is one contiguous run of the input shifted
      // by ih_off * W + iw_off; copy it whole, then zero the columns that wrapped around.
      const bool one_run = s.stride_h == 1 && sw == 1 && Wo == W && n_valid > 0 && rh.hi > rh.lo;
      for (int64_t c = 0; c < s.channels; ++c) {
        T* dst = cols + ((c * s.kernel_h + ki) * s.kernel_w + kj) * ld;  // (Ho, Wo)
        const T* plane = x + c * H * W;                                   // (H, W)
        if (one_run) {
          const int64_t first = rh.lo * Wo + rw.lo, last = (rh.hi - 1) * Wo + rw.hi;  // valid [first, last)
          std::fill(dst, dst + first, T(0));
          std::memcpy(dst + first, plane + first + ih_off * W + iw_off, static_cast<size_t>(last - first) * sizeof(T));
          std::fill(dst + last, dst + Ho * Wo, T(0));
          if (n_valid < Wo) {
            for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
              T* d = dst + oh * Wo;
              for (int64_t ow = 0; ow < rw.lo; ++ow) d[ow] = T(0);
              for (int64_t ow = rw.hi; ow < Wo; ++ow) d[ow] = T(0);
            }
          }
          continue;
        }
        std::fill(dst, dst + rh.lo * Wo, T(0));
        for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
          T* d = dst + oh * Wo;
          if (n_valid == 0) {
            std::fill(d, d + Wo, T(0));
            continue;
          }
          const T* src = plane + (oh * s.stride_h + ih_off) * W + rw.lo * sw + iw_off;  // input of ow = rw.lo
          for (int64_t ow = 0; ow < rw.lo; ++ow) d[ow] = T(0);
          T* dv = d + rw.lo;
          if (sw == 1) {
            for (int64_t i = 0; i < n_valid; ++i) dv[i] = src[i];
          } else {
            for (int64_t i = 0; i < n_valid; ++i) dv[i] = src[i * sw];
          }
          for (int64_t ow = rw.hi; ow < Wo; ++ow) d[ow] = T(0);
        }
        std::fill(dst + rh.hi * Wo, dst + Ho * Wo, T(0));
      }
    }
  }
}

template <class T>
void col2im_add(T* cols, int64_t ld, const ConvShape& s, T* x) {
  const int64_t H = s.height, W = s.width, Ho = s.out_h, Wo = s.out_w, sw = s.stride_w;
  for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
    const int64_t ih_off = ki * s.dilation_h - s.pad_h;
    const Range rh = valid_range(ih_off, s.stride_h, H, Ho);
    for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
      const int64_t iw_off = kj * s.dilation_w - s.pad_w;
      const Range rw = valid_range(iw_off, sw, W, Wo);
      const int64_t n_valid = rw.hi - rw.lo;
      if (n_valid == 0 || rh.hi == rh.lo) continue;
      // As in im2col: with stride 1 and Wo == W the valid block is one shifted run; its
      // wrapped-around columns are zeroed in cols first, so adding the whole run is exact.
      const bool one_run = s.stride_h == 1 && sw == 1 && Wo == W;
      for (int64_t c = 0; c < s.channels; ++c) {
        T* src = cols + ((c * s.kernel_h + ki) * s.kernel_w + kj) * ld;  // (Ho, Wo)
        T* plane = x + c * H * W;                                         // (H, W)
        if (one_run) {
          const int64_t first = rh.lo * Wo + rw.lo, last = (rh.hi - 1) * Wo + rw.hi;  // valid [first, last)
          if (n_valid < Wo) {
            for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
              T* row = src + oh * Wo;
              for (int64_t ow = 0; ow < rw.lo; ++ow) row[ow] = T(0);
              for (int64_t ow = rw.hi; ow < Wo; ++ow) row[ow] = T(0);
            }
          }
          add_run(plane + first + ih_off * W + iw_off, src + first, last - first);
          continue;
        }
        for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
          const T* sv = src + oh * Wo + rw.lo;
          T* dst = plane + (oh * s.stride_h + ih_off) * W + rw.lo * sw + iw_off;
          if (sw == 1) {
            add_run(dst, sv, n_valid);
          } else {
            for (int64_t i = 0; i < n_valid; ++i) dst[i * sw] += sv[i];
          }
        }
      }
    }
  }
}

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, int64_t batch, int64_t out_channels,
                    int64_t groups, const ConvShape& s) {
  const int64_t L = s.out_plane(), K = s.col_rows(), Kg = K / groups, O = out_channels, Og = O / groups;
  const int64_t image_in = s.channels * s.in_plane(), image_out = O * L;
  if (batch == 0 || image_out == 0) return;
  const int64_t ranges = range_count(batch, batch * image_out * Kg);
  const int64_t pack = images_per_gemm(s, ceil_div(batch, ranges), sizeof(T));
  const bool direct = s.is_pointwise();
  // Per range: the packed column matrix (K, pack * L) and, when pack > 1, the packed
  // output (O, pack * L) that is scattered into y.
  std::vector<std::vector<T>> cols(ranges), packed(ranges);
  for (int64_t r = 0; r < ranges; ++r) {
    if (!direct) cols[r].resize(static_cast<size_t>(K * pack * L));
    if (pack > 1) packed[r].resize(static_cast<size_t>(O * pack * L));
  }
  for_each_range(ranges, [&](int64_t r) {
    const Range images = image_range(batch, ranges, r);
    for (int64_t n0 = images.lo; n0 < images.hi; n0 += pack) {
      const int64_t b = std::min(pack, images.hi - n0), width = b * L;
      const T* col = x + n0 * image_in;  // direct: the image (C, L) itself
      if (!direct) {
        for (int64_t i = 0; i < b; ++i) im2col(x + (n0 + i) * image_in, s, cols[r].data() + i * L, width);
        col = cols[r].data();
      }
      T* out = b == 1 ? y + n0 * image_out : packed[r].data();  // (O, width)
      // Per group g: out[g*Og : (g+1)*Og] (Og, width) = w_g (Og, Kg) @ col[g*Kg : (g+1)*Kg] (Kg, width).
      gemm<T>(false, false, Og, width, Kg, 1.0f, w, Kg, Og * Kg, col, width, Kg * width, 0.0f, out, width,
              Og * width, groups);
      if (b == 1) {
        if (bias != nullptr) {
          for (int64_t o = 0; o < O; ++o) {
            T* row = out + o * L;
            const T bo = bias[o];
            for (int64_t l = 0; l < L; ++l) row[l] += bo;
          }
        }
        continue;
      }
      for (int64_t i = 0; i < b; ++i) {
        T* yi = y + (n0 + i) * image_out;  // (O, L)
        for (int64_t o = 0; o < O; ++o) {
          const T* src = out + o * width + i * L;
          T* dst = yi + o * L;
          const T bo = bias != nullptr ? bias[o] : T(0);
          for (int64_t l = 0; l < L; ++l) dst[l] = src[l] + bo;
        }
      }
    }
  });
}

template <class T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t batch,
                     int64_t out_channels, int64_t groups, const ConvShape& s) {
  using Acc = acc_t<T>;
  const int64_t L = s.out_plane(), K = s.col_rows(), Kg = K / groups, O = out_channels, Og = O / groups;
  const int64_t image_in = s.channels * s.in_plane(), image_out = O * L, w_size = O * Kg;
  if (batch == 0 || image_out == 0) {  // no term contributes
    if (dx != nullptr) std::fill(dx, dx + batch * image_in, T(0));
    if (dw != nullptr) std::fill(dw, dw + w_size, T(0));
    if (db != nullptr) std::fill(db, db + O, T(0));
    return;
  }
  const int64_t ranges = range_count(batch, batch * image_out * Kg);
  const int64_t pack = images_per_gemm(s, ceil_div(batch, ranges), sizeof(T));
  const bool direct = s.is_pointwise();
  const bool need_cols = !direct && (dx != nullptr || dw != nullptr);
  // Per range: a column buffer (K, pack*L) (im2col for dw, then W^T dy for dx), the
  // packed dy (O, pack*L) when pack > 1, and partial dw / db (range 0 writes dw directly).
  std::vector<std::vector<T>> cols(ranges), packed(ranges), dw_part(ranges);
  std::vector<std::vector<Acc>> db_part(ranges);
  for (int64_t r = 0; r < ranges; ++r) {
    if (need_cols) cols[r].resize(static_cast<size_t>(K * pack * L));
    if (pack > 1) packed[r].resize(static_cast<size_t>(O * pack * L));
    if (dw != nullptr && r > 0) dw_part[r].resize(static_cast<size_t>(w_size));
    if (db != nullptr) db_part[r].assign(static_cast<size_t>(O), Acc(0));
  }
  for_each_range(ranges, [&](int64_t r) {
    const Range images = image_range(batch, ranges, r);
    T* dw_r = dw == nullptr ? nullptr : (r == 0 ? dw : dw_part[r].data());
    bool first = true;
    for (int64_t n0 = images.lo; n0 < images.hi; n0 += pack) {
      const int64_t b = std::min(pack, images.hi - n0), width = b * L;
      // g_out (O, width): this chunk's dy, packed side by side when b > 1.
      const T* g_out = dy + n0 * image_out;
      if (b > 1) {
        T* p = packed[r].data();
        for (int64_t i = 0; i < b; ++i)
          for (int64_t o = 0; o < O; ++o)
            std::memcpy(p + o * width + i * L, dy + (n0 + i) * image_out + o * L, static_cast<size_t>(L) * sizeof(T));
        g_out = p;
      }
      if (db != nullptr) {
        Acc* acc = db_part[r].data();
        for (int64_t o = 0; o < O; ++o) acc[o] += row_sum<T, Acc>(g_out + o * width, width);
      }
      if (dw_r != nullptr) {
        const T* col = x + n0 * image_in;
        if (!direct) {
          for (int64_t i = 0; i < b; ++i) im2col(x + (n0 + i) * image_in, s, cols[r].data() + i * L, width);
          col = cols[r].data();
        }
        // Per group: dw_g (Og, Kg) (+)= g_out_g (Og, width) @ col_g^T (width, Kg).
        gemm<T>(false, true, Og, Kg, width, 1.0f, g_out, width, Og * width, col, width, Kg * width,
                first ? 0.0f : 1.0f, dw_r, Kg, Og * Kg, groups);
      }
      if (dx != nullptr) {
        if (direct) {  // dx_n (C, L) = w^T (C, O) @ dy_n (O, L), per group
          gemm<T>(true, false, Kg, L, Og, 1.0f, w, Kg, Og * Kg, g_out, width, Og * width, 0.0f, dx + n0 * image_in,
                  L, Kg * L, groups);
        } else {  // dcols (K, width) = w^T @ g_out per group, then scattered back
          T* dcols = cols[r].data();
          gemm<T>(true, false, Kg, width, Og, 1.0f, w, Kg, Og * Kg, g_out, width, Og * width, 0.0f, dcols, width,
                  Kg * width, groups);
          for (int64_t i = 0; i < b; ++i) {
            T* dxi = dx + (n0 + i) * image_in;
            std::fill(dxi, dxi + image_in, T(0));
            col2im_add(dcols + i * L, width, s, dxi);
          }
        }
      }
      first = false;
    }
  });
  // Fixed-order reductions over the ranges.
  if (dw != nullptr) {
    for (int64_t r = 1; r < ranges; ++r) {
      const T* part = dw_part[r].data();
      for (int64_t j = 0; j < w_size; ++j) dw[j] += part[j];
    }
  }
  if (db != nullptr) {
    for (int64_t o = 0; o < O; ++o) {
      Acc sum(0);
      for (int64_t r = 0; r < ranges; ++r) sum += db_part[r][o];
      db[o] = T(sum);
    }
  }
}

#define ZAE_INSTANTIATE_IM2COL(T)                                                                            \
  template void im2col<T>(const T*, const ConvShape&, T*, int64_t);                                          \
  template void col2im_add<T>(T*, int64_t, const ConvShape&, T*);                                      \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, const ConvShape&); \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t,       \
                                   const ConvShape&);
ZAE_INSTANTIATE_IM2COL(float)
ZAE_INSTANTIATE_IM2COL(double)
#undef ZAE_INSTANTIATE_IM2COL

}  // namespace zae::kernels::cpu
