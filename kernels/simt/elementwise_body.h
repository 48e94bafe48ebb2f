// Per-thread bodies of the generic CUDA elementwise kernels (kernels/cuda/elementwise.cuh),
// host-callable so that tests run every thread of a grid on the CPU (no GPU needed):
//  - vector_body: the contiguous path. Thread t of T handles vectors v = t, t + T, ...
//    of W elements with one aligned W-element load per dense input and one store, then
//    the n % W tail elements one by one; a broadcast input is read once per vector.
//  - strided_body: any layout of a 32-bit chunk, offsets from OffsetCalc.
// out = f(in_1, ..., in_M) per element; f takes and returns storage types (the functor
// widens and narrows). Invariants: the vector path needs every dense pointer aligned to
// W elements (launch_plan.h checks it); indices of the vector path are 64-bit.
#pragma once

#include <cstdint>
#include <utility>

#include "kernels/macros.h"
#include "kernels/simt/offset_calc.h"

namespace zae::kernels::simt {

/// An input of the contiguous path: dense (p[i]) or one broadcast value (p[0]).
template <class T>
struct Src {
  const T* p;
  bool broadcast;
};

/// W elements moved as one aligned access (16 bytes for the widest operand).
template <class T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};

template <int W, class T>
ZAE_INLINE Pack<T, W> load_pack(const Src<T>& s, int64_t base) {
  if (s.broadcast) {
    Pack<T, W> r;
    const T x = s.p[0];
    ZAE_UNROLL
    for (int w = 0; w < W; ++w) r.v[w] = x;
    return r;
  }
  return *reinterpret_cast<const Pack<T, W>*>(s.p + base);
}

template <class Out, int W, class F, class... In>
ZAE_INLINE Pack<Out, W> map_packs(const F& f, const Pack<In, W>&... p) {
  Pack<Out, W> o;
  ZAE_UNROLL
  for (int w = 0; w < W; ++w) o.v[w] = f(p.v[w]...);
  return o;
}

/// Contiguous path over n elements for thread tid of nthreads.
template <int W, class Out, class F, class... In>
ZAE_INLINE void vector_body(int64_t tid, int64_t nthreads, int64_t n, Out* out, const F& f, const Src<In>&... in) {
  const int64_t nvec = n / W;
  for (int64_t v = tid; v < nvec; v += nthreads) {
    const int64_t base = v * W;
    *reinterpret_cast<Pack<Out, W>*>(out + base) = map_packs<Out, W>(f, load_pack<W>(in, base)...);
  }
  for (int64_t i = nvec * W + tid; i < n; i += nthreads) out[i] = f(in.p[in.broadcast ? 0 : i]...);
}

template <int N, class Out, class F, size_t... I, class... In>
ZAE_INLINE void apply_at(const int32_t (&off)[N], Out* out, const F& f, std::index_sequence<I...>, const In*... in) {
  out[off[0]] = f(in[off[I + 1]]...);
}

/// Strided path over a 32-bit chunk of n elements for thread tid of nthreads.
template <int N, class Out, class F, class... In>
ZAE_INLINE void strided_body(uint32_t tid, uint32_t nthreads, uint32_t n, const OffsetCalc<N>& oc, Out* out,
                             const F& f, const In*... in) {
  static_assert(N == 1 + sizeof...(In));
  for (uint32_t i = tid; i < n; i += nthreads) {
    int32_t off[N];
    oc.get(i, off);
    apply_at<N>(off, out, f, std::index_sequence_for<In...>{}, in...);
  }
}

}  // namespace zae::kernels::simt
