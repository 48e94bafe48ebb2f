#include "kernels/cpu/index.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/numeric.h"

namespace zae::kernels::cpu {

namespace {

// Lowers `target` to `value` if smaller (atomic min).
void atomic_min(std::atomic<int64_t>& target, int64_t value) {
  int64_t cur = target.load(std::memory_order_relaxed);
  while (value < cur && !target.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
  }
}

void atomic_max(std::atomic<int64_t>& target, int64_t value) {
  int64_t cur = target.load(std::memory_order_relaxed);
  while (value > cur && !target.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
  }
}

// a + b computed in T's arithmetic type and stored back as T.
template <class T>
inline T add_as(T a, T b) {
  using A = acc_t<T>;
  return T(static_cast<A>(static_cast<A>(a) + static_cast<A>(b)));
}

// Rows of `acc` (outer, out_rows, inner) += src (outer, n_index, inner) at index rows.
// One thread owns each column (o, j), so every element is summed in index order.
template <class A, class T, class I>
void index_add_columns(A* acc, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index,
                       int64_t inner, int64_t skip_row) {
  const int64_t columns = outer * inner;
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(n_index, 1));
  parallel_for(columns, grain, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e;) {
      const int64_t o = c / inner;
      const int64_t jb = c % inner;
      const int64_t je = std::min(inner, jb + (e - c));
      for (int64_t l = 0; l < n_index; ++l) {
        const int64_t row = static_cast<int64_t>(index[l]);
        if (row == skip_row) continue;
        A* dst = acc + (o * out_rows + row) * inner;   // (inner)
        const T* s = src + (o * n_index + l) * inner;  // (inner)
        for (int64_t j = jb; j < je; ++j) dst[j] += static_cast<A>(s[j]);
      }
      c += je - jb;
    }
  });
}

}  // namespace

template <class I>
int64_t find_invalid_index(const I* index, int64_t n, int64_t size, const int64_t* ignore) {
  std::atomic<int64_t> first{n};
  parallel_for(n, kDefaultGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t v = static_cast<int64_t>(index[i]);
      if (ignore != nullptr && v == *ignore) continue;
      if (v < 0 || v >= size) {
        atomic_min(first, i);
        return;
      }
    }
  });
  const int64_t pos = first.load();
  return pos == n ? -1 : pos;
}

template <class I>
int64_t max_index(const I* index, int64_t n) {
  std::atomic<int64_t> best{std::numeric_limits<int64_t>::min()};
  parallel_for(n, kDefaultGrain, [&](int64_t b, int64_t e) {
    int64_t m = std::numeric_limits<int64_t>::min();
    for (int64_t i = b; i < e; ++i) m = std::max<int64_t>(m, static_cast<int64_t>(index[i]));
    atomic_max(best, m);
  });
  return best.load();
}

template <class T, class I>
void gather(const StridedIter<3>& it, T* out, const T* x, const I* index, int64_t x_dim_stride) {
  parallel_for(it.numel(), kDefaultGrain, [&](int64_t b, int64_t e) {
    for_each_run(it, b, e, [&](const auto& off, int64_t count, const auto& st) {
      T* o = out + off[0];
      const T* xb = x + off[1];
      const I* idx = index + off[2];
      for (int64_t i = 0; i < count; ++i)
        o[i * st[0]] = xb[i * st[1] + static_cast<int64_t>(idx[i * st[2]]) * x_dim_stride];
    });
  });
}

template <class T, class I>
void scatter_add(const StridedIter<3>& it, T* out, const T* src, const I* index, int64_t out_dim_stride) {
  const int64_t len = it.ndim == 0 ? 1 : it.sizes[it.ndim - 1];  // positions along the scatter dim
  if (len == 0 || it.numel() == 0) return;
  const int64_t lines = it.numel() / len;
  // Lines (fixed non-scatter coordinates) write disjoint outputs: split the work over them.
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / len);
  parallel_for(lines, grain, [&](int64_t b, int64_t e) {
    for_each_run(it, b * len, e * len, [&](const auto& off, int64_t count, const auto& st) {
      T* o = out + off[0];
      const T* s = src + off[1];
      const I* idx = index + off[2];
      for (int64_t i = 0; i < count; ++i) {
        T& dst = o[i * st[0] + static_cast<int64_t>(idx[i * st[2]]) * out_dim_stride];
        dst = add_as(dst, s[i * st[1]]);
      }
    });
  });
}

template <class T, class I>
void index_select(T* out, const T* x, const I* index, int64_t outer, int64_t x_rows, int64_t n_index, int64_t inner) {
  const int64_t rows = outer * n_index;
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(inner, 1));
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / n_index, l = r % n_index;
      const T* s = x + (o * x_rows + static_cast<int64_t>(index[l])) * inner;  // (inner)
      std::copy(s, s + inner, out + r * inner);
    }
  });
}

template <class T, class I>
void index_add(T* out, const T* src, const I* index, int64_t outer, int64_t out_rows, int64_t n_index, int64_t inner,
               int64_t skip_row) {
  if (outer * inner == 0 || n_index == 0) return;
  if constexpr (std::is_same_v<acc_t<T>, T>) {
    index_add_columns<T, T, I>(out, src, index, outer, out_rows, n_index, inner, skip_row);
  } else {
    // 16-bit floats: accumulate every output element in float, round once at the end.
    using A = acc_t<T>;
    const int64_t n = outer * out_rows * inner;
    std::vector<A> acc(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) acc[i] = static_cast<A>(out[i]);
    index_add_columns<A, T, I>(acc.data(), src, index, outer, out_rows, n_index, inner, skip_row);
    for (int64_t i = 0; i < n; ++i) out[i] = T(acc[i]);
  }
}

template <class I>
void one_hot(int64_t* out, const I* index, int64_t n, int64_t classes) {
  const int64_t grain = std::max<int64_t>(1, kDefaultGrain / std::max<int64_t>(classes, 1));
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    std::fill(out + b * classes, out + e * classes, int64_t{0});
    for (int64_t i = b; i < e; ++i) out[i * classes + static_cast<int64_t>(index[i])] = 1;
  });
}

#define ZAE_INDEX_ONLY(I)                                                             \
  template int64_t find_invalid_index<I>(const I*, int64_t, int64_t, const int64_t*); \
  template int64_t max_index<I>(const I*, int64_t);                                   \
  template void one_hot<I>(int64_t*, const I*, int64_t, int64_t);
ZAE_INDEX_ONLY(int32_t)
ZAE_INDEX_ONLY(int64_t)
#undef ZAE_INDEX_ONLY

#define ZAE_INDEX_SELECTING(T, I)                                                     \
  template void gather<T, I>(const StridedIter<3>&, T*, const T*, const I*, int64_t); \
  template void index_select<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t, int64_t);
#define ZAE_INDEX_ACCUMULATING(T, I)                                                       \
  template void scatter_add<T, I>(const StridedIter<3>&, T*, const T*, const I*, int64_t); \
  template void index_add<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t, int64_t, int64_t);
#define ZAE_INDEX_ALL(T)             \
  ZAE_INDEX_SELECTING(T, int32_t)    \
  ZAE_INDEX_SELECTING(T, int64_t)    \
  ZAE_INDEX_ACCUMULATING(T, int32_t) \
  ZAE_INDEX_ACCUMULATING(T, int64_t)
ZAE_INDEX_ALL(float)
ZAE_INDEX_ALL(double)
ZAE_INDEX_ALL(Half)
ZAE_INDEX_ALL(BFloat16)
ZAE_INDEX_ALL(int32_t)
ZAE_INDEX_ALL(int64_t)
ZAE_INDEX_ALL(uint8_t)
ZAE_INDEX_SELECTING(bool, int32_t)
ZAE_INDEX_SELECTING(bool, int64_t)
#undef ZAE_INDEX_ALL
#undef ZAE_INDEX_ACCUMULATING
#undef ZAE_INDEX_SELECTING

}  // namespace zae::kernels::cpu
