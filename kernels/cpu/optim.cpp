// CPU multi-tensor optimizer updates (contract in optim.h).
// The concatenated element range of all tensors is split by parallel_for; each chunk
// walks the (tensor, sub-range) pieces it covers and runs branch-free inner loops
// specialised at compile time on the configuration flags, so they vectorize. std::sqrt
// may set errno, which keeps compilers from vectorizing it, so the updates run in
// blocks of kBlock elements: a loop that updates the moments and writes the sqrt
// arguments, sqrt_inplace over the block (explicit SIMD, IEEE-exact like std::sqrt),
// and a loop that updates the parameters. SGD and Adam read and write parameters
// through ParamIO, which adds master weights and stochastic rounding for 16-bit types
// (compiled out for float and double).
#include "kernels/cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>  // 256-bit sqrt is enough for these memory-bound loops
#endif

#include "kernels/cpu/parallel.h"
#include "kernels/optim_math.h"

namespace zae::kernels::cpu {

namespace {

// Optimizer updates touch 3-6 arrays per element: a smaller grain than plain elementwise ops.
constexpr int64_t kOptimGrain = kDefaultGrain / 2;

/// Calls fn(t, lo, hi) for the pieces [lo, hi) of every tensor t, in parallel over the
/// concatenation of all tensors.
template <class Fn>
void multi_tensor_apply(int n_tensors, const int64_t* sizes, Fn&& fn) {
  std::vector<int64_t> start(static_cast<size_t>(n_tensors) + 1, 0);  // prefix sums of sizes
  for (int t = 0; t < n_tensors; ++t) start[t + 1] = start[t] + sizes[t];
  const int64_t total = start[n_tensors];
  parallel_for(total, kOptimGrain, [&](int64_t begin, int64_t end) {
    int t = static_cast<int>(std::upper_bound(start.begin(), start.end(), begin) - start.begin()) - 1;
    for (int64_t pos = begin; pos < end && t < n_tensors; ++t) {
      const int64_t hi = std::min(end, start[t + 1]);
      if (hi > pos) fn(t, pos - start[t], hi - start[t]);
      pos = std::max(pos, hi);
    }
  });
}

/// Runs fn(std::integral_constant<bool, b>{}): turns a runtime flag into a compile-time one.
template <class Fn>
void with_flag(bool b, Fn&& fn) {
  if (b)
    fn(std::true_type{});
  else
    fn(std::false_type{});
}

constexpr int64_t kBlock = 256;  // elements per sqrt block (a few KB: stays in L1)

/// x[i] = sqrt(x[i]) for i < n, correctly rounded (the same bits as std::sqrt).
inline void sqrt_inplace(float* x, int64_t n) {
  int64_t i = 0;
#if defined(__AVX__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

inline void sqrt_inplace(double* x, int64_t n) {
  int64_t i = 0;
#if defined(__AVX__)
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
#elif defined(__SSE2__)
  for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#endif
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

/// torch.maximum: NaN in either operand propagates.
template <class C>
inline C nan_max(C a, C b) {
  return (a > b || a != a) ? a : b;
}

// ---- parameter access: master weights and stochastic rounding ---------------------------

/// Reads the values an update starts from and writes its results, for one range of one
/// tensor. For 16-bit T: from / to the float32 master when there is one, and with
/// stochastic rounding for bfloat16 when asked; for float / double plain accesses.
template <class T>
struct ParamIO {
  using C = acc_t<T>;
  static constexpr bool kLow = sizeof(T) == 2;
  float* master = nullptr;  // the range's master values (null: none)
  bool sr = false;
  uint64_t seed = 0;
  uint32_t id = 0, step = 0;
  int64_t base = 0;  // element index of the range start within its tensor
  uint64_t quad = ~uint64_t(0);
  philox::U32x4 words{};

  C load(const T* p, int64_t i) const {
    if constexpr (kLow)
      if (master) return master[i];
    return static_cast<C>(p[i]);
  }
  void store(T* p, int64_t i, C v) {
    if constexpr (kLow) {
      if (master) master[i] = v;
      uint32_t w = 0;
      if (sr) {
        const uint64_t j = static_cast<uint64_t>(base + i);
        if ((j >> 2) != quad) {
          quad = j >> 2;
          words = optim_math::rounding_words(seed, id, step, quad);
        }
        w = words.v[j & 3];
      }
      p[i] = optim_math::to_param<T>(v, sr, w);
    } else {
      p[i] = static_cast<T>(v);
    }
  }
};

/// The ParamIO of elements [lo, ...) of tensor t at step `step`.
template <class T>
ParamIO<T> param_io(const StepExtras& x, int t, double step, int64_t lo) {
  ParamIO<T> io;
  if constexpr (ParamIO<T>::kLow) {
    io.master = x.master && x.master[t] ? x.master[t] + lo : nullptr;
    io.sr = x.stochastic_rounding && std::is_same_v<T, BFloat16>;
    io.seed = x.seed;
    io.id = x.tensor_ids ? x.tensor_ids[t] : static_cast<uint32_t>(t);
    io.step = static_cast<uint32_t>(step);
    io.base = lo;
  }
  return io;
}

/// Each tensor's step for this call: the capturable counters incremented first, else `steps`.
std::vector<double> step_values(int n_tensors, const double* steps, float* const* step_counts) {
  std::vector<double> out(static_cast<size_t>(n_tensors), 0.0);
  for (int t = 0; t < n_tensors; ++t) {
    if (step_counts) {
      *step_counts[t] += 1.0f;
      out[t] = static_cast<double>(*step_counts[t]);
    } else if (steps) {
      out[t] = steps[t];
    }
  }
  return out;
}

// ---- SGD -----------------------------------------------------------------------------

template <class C>
struct SgdScalars {
  C sign, wd, momentum, one_minus_dampening, neg_lr;
};

template <class T, bool WD, bool MOMENTUM, bool NESTEROV>
void sgd_range(const SgdScalars<acc_t<T>>& s, bool fresh, ParamIO<T>& io, T* __restrict p, const T* __restrict g,
               acc_t<T>* __restrict buf, int64_t n) {
  using C = acc_t<T>;
  for (int64_t i = 0; i < n; ++i) {  // (n) elements of one tensor
    const C pi = io.load(p, i);
    C d = s.sign * static_cast<C>(g[i]);
    if constexpr (WD) d = d + s.wd * pi;
    if constexpr (MOMENTUM) {
      const C b = fresh ? d : buf[i] * s.momentum + s.one_minus_dampening * d;
      buf[i] = b;
      if constexpr (NESTEROV)
        d = d + s.momentum * b;
      else
        d = b;
    }
    io.store(p, i, pi + s.neg_lr * d);
  }
}

// ---- Adam / AdamW --------------------------------------------------------------------

template <class C>
using AdamScalars = optim_math::AdamFactors<C>;

template <class T, bool L2, bool DECOUPLED, bool AMS>
void adam_range(const AdamScalars<acc_t<T>>& s, ParamIO<T>& io, T* __restrict p, const T* __restrict g,
                acc_t<T>* __restrict m, acc_t<T>* __restrict v, acc_t<T>* __restrict vmax, int64_t n) {
  using C = acc_t<T>;
  C root[kBlock];  // (kBlock) sqrt(v) of the block
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t bn = std::min(kBlock, n - b0);
    const T* __restrict gb = g + b0;
    C* __restrict mb = m + b0;
    C* __restrict vb = v + b0;
    for (int64_t i = 0; i < bn; ++i) {  // (bn) moments
      C gi = s.sign * static_cast<C>(gb[i]);
      if constexpr (L2) gi = gi + s.wd * io.load(p, b0 + i);
      mb[i] = mb[i] * s.beta1 + s.one_minus_beta1 * gi;
      C vi = vb[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
      vb[i] = vi;
      if constexpr (AMS) {
        vi = nan_max(vmax[b0 + i], vi);
        vmax[b0 + i] = vi;
      }
      root[i] = vi;
    }
    sqrt_inplace(root, bn);
    for (int64_t i = 0; i < bn; ++i) {  // (bn) parameters
      C pi = io.load(p, b0 + i);
      if constexpr (DECOUPLED) pi = pi * s.decay;
      const C denom = root[i] / s.bc2_sqrt + s.eps;
      io.store(p, b0 + i, pi + s.neg_step_size * (mb[i] / denom));
    }
  }
}

// ---- RMSprop -------------------------------------------------------------------------

template <class C>
struct RmspropScalars {
  C sign, wd, alpha, one_minus_alpha, eps, momentum, neg_lr;
};

template <class T, bool WD, bool CENTERED, bool MOMENTUM>
void rmsprop_range(const RmspropScalars<acc_t<T>>& s, T* __restrict p, const T* __restrict g,
                   acc_t<T>* __restrict sq, acc_t<T>* __restrict ga, acc_t<T>* __restrict buf, int64_t n) {
  using C = acc_t<T>;
  C avg[kBlock];  // (kBlock) sqrt of the (centered) mean square of the block
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t bn = std::min(kBlock, n - b0);
    T* __restrict pb = p + b0;
    const T* __restrict gb = g + b0;
    C* __restrict sqb = sq + b0;
    for (int64_t i = 0; i < bn; ++i) {  // (bn) averages
      C gi = s.sign * static_cast<C>(gb[i]);
      if constexpr (WD) gi = gi + s.wd * static_cast<C>(pb[i]);
      const C sqi = sqb[i] * s.alpha + s.one_minus_alpha * gi * gi;
      sqb[i] = sqi;
      if constexpr (CENTERED) {
        const C gai = ga[b0 + i] * s.alpha + s.one_minus_alpha * gi;
        ga[b0 + i] = gai;
        avg[i] = sqi + C(-1) * gai * gai;
      } else {
        avg[i] = sqi;
      }
    }
    sqrt_inplace(avg, bn);
    for (int64_t i = 0; i < bn; ++i) {  // (bn) parameters
      const C pi = static_cast<C>(pb[i]);
      C gi = s.sign * static_cast<C>(gb[i]);
      if constexpr (WD) gi = gi + s.wd * pi;
      const C a = avg[i] + s.eps;
      if constexpr (MOMENTUM) {
        const C b = buf[b0 + i] * s.momentum + gi / a;
        buf[b0 + i] = b;
        pb[i] = static_cast<T>(pi + s.neg_lr * b);
      } else {
        pb[i] = static_cast<T>(pi + s.neg_lr * (gi / a));
      }
    }
  }
}

// ---- Adagrad -------------------------------------------------------------------------

template <class C>
struct AdagradScalars {
  C sign, wd, eps, neg_clr;  // neg_clr per tensor
};

template <class T, bool WD>
void adagrad_range(const AdagradScalars<acc_t<T>>& s, T* __restrict p, const T* __restrict g,
                   acc_t<T>* __restrict sum, int64_t n) {
  using C = acc_t<T>;
  C root[kBlock];  // (kBlock) sqrt(sum) of the block
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t bn = std::min(kBlock, n - b0);
    T* __restrict pb = p + b0;
    const T* __restrict gb = g + b0;
    C* __restrict sb = sum + b0;
    for (int64_t i = 0; i < bn; ++i) {  // (bn) accumulators
      C gi = s.sign * static_cast<C>(gb[i]);
      if constexpr (WD) gi = gi + s.wd * static_cast<C>(pb[i]);
      const C si = sb[i] + C(1) * gi * gi;
      sb[i] = si;
      root[i] = si;
    }
    sqrt_inplace(root, bn);
    for (int64_t i = 0; i < bn; ++i) {  // (bn) parameters
      const C pi = static_cast<C>(pb[i]);
      C gi = s.sign * static_cast<C>(gb[i]);
      if constexpr (WD) gi = gi + s.wd * pi;
      pb[i] = static_cast<T>(pi + s.neg_clr * (gi / (root[i] + s.eps)));
    }
  }
}

}  // namespace

template <class T>
void sgd_step(const SgdHyper& h, int n_tensors, T* const* params, const T* const* grads,
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes, const StepExtras& x) {
  using C = acc_t<T>;
  using namespace optim_math;
  const double own[kSgdSlots] = {h.lr, h.momentum, h.dampening, h.weight_decay};
  const double* hv = x.hyper ? x.hyper : own;
  const std::vector<double> steps = step_values(n_tensors, x.sr_steps, x.step_counts);
  const SgdScalars<C> s{C(h.maximize ? -1 : 1), C(hv[kSgdWeightDecay]), C(hv[kSgdMomentum]),
                        C(1 - hv[kSgdDampening]), C(-hv[kSgdLr])};
  with_flag(hv[kSgdWeightDecay] != 0, [&](auto wd) {
    with_flag(h.momentum != 0, [&](auto mom) {
      with_flag(h.nesterov, [&](auto nest) {
        multi_tensor_apply(n_tensors, sizes, [&](int t, int64_t lo, int64_t hi) {
          ParamIO<T> io = param_io<T>(x, t, steps[t], lo);
          sgd_range<T, decltype(wd)::value, decltype(mom)::value, decltype(nest)::value>(
              s, mom ? fresh[t] != 0 : false, io, params[t] + lo, grads[t] + lo,
              mom ? momentum_buffers[t] + lo : nullptr, hi - lo);
        });
      });
    });
  });
}

template <class T>
void adam_step(const AdamHyper& h, int n_tensors, T* const* params, const T* const* grads, acc_t<T>* const* exp_avg,
               acc_t<T>* const* exp_avg_sq, acc_t<T>* const* max_exp_avg_sq, const double* steps,
               const int64_t* sizes, const StepExtras& x) {
  using C = acc_t<T>;
  using namespace optim_math;
  const double own[kAdamSlots] = {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay};
  const double* hv = x.hyper ? x.hyper : own;
  const std::vector<double> t_of = step_values(n_tensors, steps, x.step_counts);
  const bool l2 = !h.decoupled_weight_decay && hv[kAdamWeightDecay] != 0;
  with_flag(l2, [&](auto L2) {
    with_flag(h.decoupled_weight_decay, [&](auto DEC) {
      with_flag(h.amsgrad, [&](auto AMS) {
        multi_tensor_apply(n_tensors, sizes, [&](int t, int64_t lo, int64_t hi) {
          const AdamScalars<C> s = adam_factors<C>(hv, h.maximize, t_of[t]);
          ParamIO<T> io = param_io<T>(x, t, t_of[t], lo);
          adam_range<T, decltype(L2)::value, decltype(DEC)::value, decltype(AMS)::value>(
              s, io, params[t] + lo, grads[t] + lo, exp_avg[t] + lo, exp_avg_sq[t] + lo,
              AMS ? max_exp_avg_sq[t] + lo : nullptr, hi - lo);
        });
      });
    });
  });
}

template <class T>
void rmsprop_step(const RmspropHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* square_avg, acc_t<T>* const* grad_avg, acc_t<T>* const* momentum_buffer,
                  const int64_t* sizes) {
  using C = acc_t<T>;
  const RmspropScalars<C> s{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.alpha), C(1 - h.alpha),
                            C(h.eps),                C(h.momentum),     C(-h.lr)};
  with_flag(h.weight_decay != 0, [&](auto WD) {
    with_flag(h.centered, [&](auto CEN) {
      with_flag(h.momentum > 0, [&](auto MOM) {
        multi_tensor_apply(n_tensors, sizes, [&](int t, int64_t lo, int64_t hi) {
          rmsprop_range<T, decltype(WD)::value, decltype(CEN)::value, decltype(MOM)::value>(
              s, params[t] + lo, grads[t] + lo, square_avg[t] + lo, CEN ? grad_avg[t] + lo : nullptr,
              MOM ? momentum_buffer[t] + lo : nullptr, hi - lo);
        });
      });
    });
  });
}

template <class T>
void adagrad_step(const AdagradHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* sum, const double* steps, const int64_t* sizes) {
  using C = acc_t<T>;
  const AdagradScalars<C> base{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.eps), C(0)};
  with_flag(h.weight_decay != 0, [&](auto WD) {
    multi_tensor_apply(n_tensors, sizes, [&](int t, int64_t lo, int64_t hi) {
      AdagradScalars<C> s = base;
      s.neg_clr = C(-(h.lr / (1 + (steps[t] - 1) * h.lr_decay)));
      adagrad_range<T, decltype(WD)::value>(s, params[t] + lo, grads[t] + lo, sum[t] + lo, hi - lo);
    });
  });
}

#define ZAE_INSTANTIATE_OPTIM(T)                                                                              \
  template void sgd_step<T>(const SgdHyper&, int, T* const*, const T* const*, acc_t<T>* const*, const uint8_t*, \
                            const int64_t*, const StepExtras&);                                              \
  template void adam_step<T>(const AdamHyper&, int, T* const*, const T* const*, acc_t<T>* const*,              \
                             acc_t<T>* const*, acc_t<T>* const*, const double*, const int64_t*,               \
                             const StepExtras&);                                                              \
  template void rmsprop_step<T>(const RmspropHyper&, int, T* const*, const T* const*, acc_t<T>* const*,        \
                                acc_t<T>* const*, acc_t<T>* const*, const int64_t*);                          \
  template void adagrad_step<T>(const AdagradHyper&, int, T* const*, const T* const*, acc_t<T>* const*,        \
                                const double*, const int64_t*);

ZAE_INSTANTIATE_OPTIM(float)
ZAE_INSTANTIATE_OPTIM(double)
ZAE_INSTANTIATE_OPTIM(Half)
ZAE_INSTANTIATE_OPTIM(BFloat16)

#undef ZAE_INSTANTIATE_OPTIM

}  // namespace zae::kernels::cpu
