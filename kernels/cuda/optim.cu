// CUDA multi-tensor optimizer updates (contract in optim.h; helpers in optim_apply.cuh).
// One kernel per optimizer and parameter dtype; the configuration flags are run-time
// members of the scalar struct (uniform across the grid, so the branches cost nothing
// on these memory-bound loops) to keep the number of instantiations small. Each thread
// updates 4 consecutive elements per iteration: loads of every array first, the
// update of the 4 elements, then the stores.
#include "kernels/cuda/optim.h"

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/optim_apply.cuh"

namespace zae::kernels::cuda {

namespace {

using namespace optim_detail;

// ---- SGD ------------------------------------------------------------------------------

template <class T>
struct SgdEntry {
  T* p;
  const T* g;
  acc_t<T>* buf;  // null without momentum
  int64_t n;
  uint32_t fresh;  // the buffer starts as d in this step
};

template <class C>
struct SgdScalars {
  C sign, wd, momentum, one_minus_dampening, neg_lr;
  bool use_wd, use_momentum, nesterov;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    sgd_kernel(const __grid_constant__ ChunkTable<SgdEntry<T>> table, const SgdScalars<acc_t<T>> s) {
  using C = acc_t<T>;
  int64_t begin, end;
  const SgdEntry<T> e = block_entry(table, begin, end);
  const bool read_buf = s.use_momentum && !e.fresh;
  const bool aligned = quad_aligned(e.p) && quad_aligned(e.g) && (!s.use_momentum || quad_aligned(e.buf));
  for (int64_t i = begin + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
    const bool vec = aligned && i + 4 <= end;
    Quad<T> p = load4(e.p, i, end, vec);  // (4) parameters
    const Quad<T> g = load4(e.g, i, end, vec);
    Quad<C> b{};  // (4) momentum buffer
    if (read_buf) b = load4(e.buf, i, end, vec);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const C pi = static_cast<C>(p.v[k]);
      C d = mul_rn(s.sign, static_cast<C>(g.v[k]));
      if (s.use_wd) d = add_rn(d, mul_rn(s.wd, pi));
      if (s.use_momentum) {
        const C bk = e.fresh ? d : add_rn(mul_rn(b.v[k], s.momentum), mul_rn(s.one_minus_dampening, d));
        b.v[k] = bk;
        d = s.nesterov ? add_rn(d, mul_rn(s.momentum, bk)) : bk;
      }
      p.v[k] = static_cast<T>(add_rn(pi, mul_rn(s.neg_lr, d)));
    }
    if (s.use_momentum) store4(e.buf, b, i, end, vec);
    store4(e.p, p, i, end, vec);
  }
}

// ---- Adam / AdamW -----------------------------------------------------------------------

template <class T>
struct AdamEntry {
  T* p;
  const T* g;
  acc_t<T>* m;
  acc_t<T>* v;
  acc_t<T>* vmax;  // null unless amsgrad
  int64_t n;
  acc_t<T> neg_step_size, bc2_sqrt;  // -lr / (1 - beta1^t), sqrt(1 - beta2^t)
};

template <class C>
struct AdamScalars {
  C sign, wd, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  bool l2, decoupled, amsgrad;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    adam_kernel(const __grid_constant__ ChunkTable<AdamEntry<T>> table, const AdamScalars<acc_t<T>> s) {
  using C = acc_t<T>;
  int64_t begin, end;
  const AdamEntry<T> e = block_entry(table, begin, end);
  const bool aligned = quad_aligned(e.p) && quad_aligned(e.g) && quad_aligned(e.m) && quad_aligned(e.v) &&
                       (!s.amsgrad || quad_aligned(e.vmax));
  for (int64_t i = begin + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
    const bool vec = aligned && i + 4 <= end;
    Quad<T> p = load4(e.p, i, end, vec);  // (4) parameters
    const Quad<T> g = load4(e.g, i, end, vec);
    Quad<C> m = load4(e.m, i, end, vec);  // (4) moments
    Quad<C> v = load4(e.v, i, end, vec);
    Quad<C> vmax{};
    if (s.amsgrad) vmax = load4(e.vmax, i, end, vec);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      C gi = mul_rn(s.sign, static_cast<C>(g.v[k]));
      if (s.l2) gi = add_rn(gi, mul_rn(s.wd, static_cast<C>(p.v[k])));
      m.v[k] = add_rn(mul_rn(m.v[k], s.beta1), mul_rn(s.one_minus_beta1, gi));
      C vi = add_rn(mul_rn(v.v[k], s.beta2), mul_rn(mul_rn(s.one_minus_beta2, gi), gi));
      v.v[k] = vi;
      if (s.amsgrad) {
        vi = nan_max(vmax.v[k], vi);
        vmax.v[k] = vi;
      }
      const C root = sqrt_rn(vi);
      C pi = static_cast<C>(p.v[k]);
      if (s.decoupled) pi = mul_rn(pi, s.decay);
      const C denom = add_rn(div_rn(root, e.bc2_sqrt), s.eps);
      p.v[k] = static_cast<T>(add_rn(pi, mul_rn(e.neg_step_size, div_rn(m.v[k], denom))));
    }
    store4(e.m, m, i, end, vec);
    store4(e.v, v, i, end, vec);
    if (s.amsgrad) store4(e.vmax, vmax, i, end, vec);
    store4(e.p, p, i, end, vec);
  }
}

// ---- RMSprop -------------------------------------------------------------------------------

template <class T>
struct RmspropEntry {
  T* p;
  const T* g;
  acc_t<T>* sq;
  acc_t<T>* ga;   // null unless centered
  acc_t<T>* buf;  // null unless momentum > 0
  int64_t n;
};

template <class C>
struct RmspropScalars {
  C sign, wd, alpha, one_minus_alpha, eps, momentum, neg_lr;
  bool use_wd, centered, use_momentum;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    rmsprop_kernel(const __grid_constant__ ChunkTable<RmspropEntry<T>> table, const RmspropScalars<acc_t<T>> s) {
  using C = acc_t<T>;
  int64_t begin, end;
  const RmspropEntry<T> e = block_entry(table, begin, end);
  const bool aligned = quad_aligned(e.p) && quad_aligned(e.g) && quad_aligned(e.sq) &&
                       (!s.centered || quad_aligned(e.ga)) && (!s.use_momentum || quad_aligned(e.buf));
  for (int64_t i = begin + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
    const bool vec = aligned && i + 4 <= end;
    Quad<T> p = load4(e.p, i, end, vec);  // (4) parameters
    const Quad<T> g = load4(e.g, i, end, vec);
    Quad<C> sq = load4(e.sq, i, end, vec);  // (4) averages
    Quad<C> ga{}, buf{};
    if (s.centered) ga = load4(e.ga, i, end, vec);
    if (s.use_momentum) buf = load4(e.buf, i, end, vec);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const C pi = static_cast<C>(p.v[k]);
      C gi = mul_rn(s.sign, static_cast<C>(g.v[k]));
      if (s.use_wd) gi = add_rn(gi, mul_rn(s.wd, pi));
      const C sqi = add_rn(mul_rn(sq.v[k], s.alpha), mul_rn(mul_rn(s.one_minus_alpha, gi), gi));
      sq.v[k] = sqi;
      C avg = sqi;
      if (s.centered) {
        const C gai = add_rn(mul_rn(ga.v[k], s.alpha), mul_rn(s.one_minus_alpha, gi));
        ga.v[k] = gai;
        avg = add_rn(sqi, mul_rn(mul_rn(C(-1), gai), gai));
      }
      const C a = add_rn(sqrt_rn(avg), s.eps);
      if (s.use_momentum) {
        const C b = add_rn(mul_rn(buf.v[k], s.momentum), div_rn(gi, a));
        buf.v[k] = b;
        p.v[k] = static_cast<T>(add_rn(pi, mul_rn(s.neg_lr, b)));
      } else {
        p.v[k] = static_cast<T>(add_rn(pi, mul_rn(s.neg_lr, div_rn(gi, a))));
      }
    }
    store4(e.sq, sq, i, end, vec);
    if (s.centered) store4(e.ga, ga, i, end, vec);
    if (s.use_momentum) store4(e.buf, buf, i, end, vec);
    store4(e.p, p, i, end, vec);
  }
}

// ---- Adagrad ---------------------------------------------------------------------------------

template <class T>
struct AdagradEntry {
  T* p;
  const T* g;
  acc_t<T>* sum;
  int64_t n;
  acc_t<T> neg_clr;  // -lr / (1 + (t - 1) lr_decay)
};

template <class C>
struct AdagradScalars {
  C sign, wd, eps;
  bool use_wd;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    adagrad_kernel(const __grid_constant__ ChunkTable<AdagradEntry<T>> table, const AdagradScalars<acc_t<T>> s) {
  using C = acc_t<T>;
  int64_t begin, end;
  const AdagradEntry<T> e = block_entry(table, begin, end);
  const bool aligned = quad_aligned(e.p) && quad_aligned(e.g) && quad_aligned(e.sum);
  for (int64_t i = begin + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
    const bool vec = aligned && i + 4 <= end;
    Quad<T> p = load4(e.p, i, end, vec);  // (4) parameters
    const Quad<T> g = load4(e.g, i, end, vec);
    Quad<C> sum = load4(e.sum, i, end, vec);  // (4) accumulators
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const C pi = static_cast<C>(p.v[k]);
      C gi = mul_rn(s.sign, static_cast<C>(g.v[k]));
      if (s.use_wd) gi = add_rn(gi, mul_rn(s.wd, pi));
      const C si = add_rn(sum.v[k], mul_rn(mul_rn(C(1), gi), gi));
      sum.v[k] = si;
      p.v[k] = static_cast<T>(add_rn(pi, mul_rn(e.neg_clr, div_rn(gi, add_rn(sqrt_rn(si), s.eps)))));
    }
    store4(e.sum, sum, i, end, vec);
    store4(e.p, p, i, end, vec);
  }
}

template <class Entry, class Scalars>
constexpr bool fits_arguments() {
  return sizeof(ChunkTable<Entry>) + sizeof(Scalars) <= 4000;
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------------

template <class T>
void sgd_step(const SgdHyper& h, int n_tensors, T* const* params, const T* const* grads,
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes, cudaStream_t stream) {
  using C = acc_t<T>;
  static_assert(fits_arguments<SgdEntry<T>, SgdScalars<C>>());
  const bool momentum = h.momentum != 0;
  const SgdScalars<C> s{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.momentum), C(1 - h.dampening), C(-h.lr),
                        h.weight_decay != 0,    momentum,          h.nesterov};
  pack_chunks<SgdEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        return SgdEntry<T>{params[t], grads[t], momentum ? momentum_buffers[t] : nullptr, sizes[t],
                           momentum && fresh[t] != 0 ? 1u : 0u};
      },
      [&](const ChunkTable<SgdEntry<T>>& table, int blocks) {
        sgd_kernel<T><<<blocks, kThreads, 0, stream>>>(table, s);
        CUDA_CHECK(cudaGetLastError());
      });
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void adam_step(const AdamHyper& h, int n_tensors, T* const* params, const T* const* grads, acc_t<T>* const* exp_avg,
               acc_t<T>* const* exp_avg_sq, acc_t<T>* const* max_exp_avg_sq, const double* steps,
               const int64_t* sizes, cudaStream_t stream) {
  using C = acc_t<T>;
  static_assert(fits_arguments<AdamEntry<T>, AdamScalars<C>>());
  const AdamScalars<C> s{C(h.maximize ? -1 : 1),
                         C(h.weight_decay),
                         C(1 - h.lr * h.weight_decay),
                         C(h.beta1),
                         C(1 - h.beta1),
                         C(h.beta2),
                         C(1 - h.beta2),
                         C(h.eps),
                         !h.decoupled_weight_decay && h.weight_decay != 0,
                         h.decoupled_weight_decay,
                         h.amsgrad};
  pack_chunks<AdamEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        // The CPU twin's per-tensor factors, computed the same way in double.
        const double bc1 = 1 - std::pow(h.beta1, steps[t]);
        const double bc2 = 1 - std::pow(h.beta2, steps[t]);
        return AdamEntry<T>{params[t],
                            grads[t],
                            exp_avg[t],
                            exp_avg_sq[t],
                            h.amsgrad ? max_exp_avg_sq[t] : nullptr,
                            sizes[t],
                            C(-(h.lr / bc1)),
                            C(std::sqrt(bc2))};
      },
      [&](const ChunkTable<AdamEntry<T>>& table, int blocks) {
        adam_kernel<T><<<blocks, kThreads, 0, stream>>>(table, s);
        CUDA_CHECK(cudaGetLastError());
      });
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void rmsprop_step(const RmspropHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* square_avg, acc_t<T>* const* grad_avg, acc_t<T>* const* momentum_buffer,
                  const int64_t* sizes, cudaStream_t stream) {
  using C = acc_t<T>;
  static_assert(fits_arguments<RmspropEntry<T>, RmspropScalars<C>>());
  const bool momentum = h.momentum > 0;
  const RmspropScalars<C> s{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.alpha),  C(1 - h.alpha),
                            C(h.eps),                C(h.momentum),     C(-h.lr),     h.weight_decay != 0,
                            h.centered,              momentum};
  pack_chunks<RmspropEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        return RmspropEntry<T>{params[t], grads[t], square_avg[t], h.centered ? grad_avg[t] : nullptr,
                               momentum ? momentum_buffer[t] : nullptr, sizes[t]};
      },
      [&](const ChunkTable<RmspropEntry<T>>& table, int blocks) {
        rmsprop_kernel<T><<<blocks, kThreads, 0, stream>>>(table, s);
        CUDA_CHECK(cudaGetLastError());
      });
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void adagrad_step(const AdagradHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* sum, const double* steps, const int64_t* sizes, cudaStream_t stream) {
  using C = acc_t<T>;
  static_assert(fits_arguments<AdagradEntry<T>, AdagradScalars<C>>());
  const AdagradScalars<C> s{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.eps), h.weight_decay != 0};
  pack_chunks<AdagradEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        return AdagradEntry<T>{params[t], grads[t], sum[t], sizes[t],
                               C(-(h.lr / (1 + (steps[t] - 1) * h.lr_decay)))};
      },
      [&](const ChunkTable<AdagradEntry<T>>& table, int blocks) {
        adagrad_kernel<T><<<blocks, kThreads, 0, stream>>>(table, s);
        CUDA_CHECK(cudaGetLastError());
      });
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_INSTANTIATE_CUDA_OPTIM(T)                                                                          \
  template void sgd_step<T>(const SgdHyper&, int, T* const*, const T* const*, acc_t<T>* const*, const uint8_t*, \
                            const int64_t*, cudaStream_t);                                                     \
  template void adam_step<T>(const AdamHyper&, int, T* const*, const T* const*, acc_t<T>* const*,              \
                             acc_t<T>* const*, acc_t<T>* const*, const double*, const int64_t*, cudaStream_t); \
  template void rmsprop_step<T>(const RmspropHyper&, int, T* const*, const T* const*, acc_t<T>* const*,        \
                                acc_t<T>* const*, acc_t<T>* const*, const int64_t*, cudaStream_t);            \
  template void adagrad_step<T>(const AdagradHyper&, int, T* const*, const T* const*, acc_t<T>* const*,        \
                                const double*, const int64_t*, cudaStream_t);

ZAE_INSTANTIATE_CUDA_OPTIM(float)
ZAE_INSTANTIATE_CUDA_OPTIM(double)
ZAE_INSTANTIATE_CUDA_OPTIM(Half)
ZAE_INSTANTIATE_CUDA_OPTIM(BFloat16)

#undef ZAE_INSTANTIATE_CUDA_OPTIM

}  // namespace zae::kernels::cuda
