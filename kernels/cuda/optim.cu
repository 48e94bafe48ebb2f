// CUDA multi-tensor optimizer updates (contract in optim.h; helpers in optim_apply.cuh).
// One kernel per optimizer and parameter dtype; the configuration flags are run-time
// members of the scalar struct (uniform across the grid, so the branches cost nothing
// on these memory-bound loops) to keep the number of instantiations small. Each thread
// updates 4 consecutive elements per iteration: loads of every array first, the
// update of the 4 elements, then the stores. SGD and Adam also carry master weights,
// stochastic rounding and the capturable mode (kernels/cpu/optim.h's StepExtras): a
// capturable launch reads its hyperparameters from device memory and each tensor's
// step from a device counter that a small kernel increments first.
#include "kernels/cuda/optim.h"

#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/optim_apply.cuh"
#include "kernels/optim_math.h"

namespace zae::kernels::cuda {

namespace {

using namespace optim_detail;

// ---- master weights, stochastic rounding, step counters ---------------------------------

/// The 4 master values at i (16-bit T with a master only; otherwise unused).
template <class T>
__device__ __forceinline__ Quad<float> load_master(const float* master, int64_t i, int64_t end, bool vec) {
  if constexpr (sizeof(T) == 2) {
    if (master) return load4(master, i, end, vec && quad_aligned(master));
  }
  return Quad<float>{};
}

/// The rounding words of quad i / 4 (i is a multiple of 4) when stochastic rounding is on.
__device__ __forceinline__ philox::U32x4 quad_words(bool sr, uint64_t seed, uint32_t id, uint32_t step, int64_t i) {
  if (!sr) return philox::U32x4{};
  return optim_math::rounding_words(seed, id, step, static_cast<uint64_t>(i) >> 2);
}

struct StepTable {
  static constexpr int kMax = 256;
  float* step[kMax];
  int n;
};

__global__ void increment_steps_kernel(const __grid_constant__ StepTable t) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k < t.n) *t.step[k] = add_rn(*t.step[k], 1.0f);
}

/// Adds 1 to each device counter steps[0 .. n-1] (stream-ordered before the update).
void increment_steps(float* const* steps, int n, cudaStream_t stream) {
  for (int first = 0; first < n; first += StepTable::kMax) {
    StepTable t{};
    t.n = n - first < StepTable::kMax ? n - first : StepTable::kMax;
    for (int k = 0; k < t.n; ++k) t.step[k] = steps[first + k];
    increment_steps_kernel<<<1, StepTable::kMax, 0, stream>>>(t);
    CUDA_CHECK(cudaGetLastError());
  }
}

// ---- SGD ------------------------------------------------------------------------------

template <class T>
struct SgdEntry {
  T* p;
  const T* g;
  acc_t<T>* buf;  // null without momentum
  float* master;  // null without a master copy
  float* step;    // capturable: the device step counter (already incremented)
  int64_t n;
  uint32_t fresh;    // the buffer starts as d in this step
  uint32_t id;       // rounding stream of the tensor
  uint32_t sr_step;  // normal mode: the step of the rounding stream
};

template <class C>
struct SgdScalars {
  C sign, wd, momentum, one_minus_dampening, neg_lr;
  bool use_wd, use_momentum, nesterov;
  bool sr, capturable;
  uint64_t seed;
  const double* hyper;  // capturable: optim_math::SgdSlot order, on the device
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    sgd_kernel(const __grid_constant__ ChunkTable<SgdEntry<T>> table, const SgdScalars<acc_t<T>> s0) {
  using C = acc_t<T>;
  using namespace optim_math;
  int64_t begin, end;
  const SgdEntry<T> e = block_entry(table, begin, end);
  SgdScalars<C> s = s0;
  uint32_t step = e.sr_step;
  if (s0.capturable) {
    const double* hv = s0.hyper;
    s.wd = C(hv[kSgdWeightDecay]);
    s.use_wd = hv[kSgdWeightDecay] != 0;
    s.momentum = C(hv[kSgdMomentum]);
    s.one_minus_dampening = C(dsub(1.0, hv[kSgdDampening]));
    s.neg_lr = C(-hv[kSgdLr]);
    if (e.step) step = static_cast<uint32_t>(*e.step);
  }
  const bool read_buf = s.use_momentum && !e.fresh;
  const bool aligned = quad_aligned(e.p) && quad_aligned(e.g) && (!s.use_momentum || quad_aligned(e.buf));
  for (int64_t i = begin + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
    const bool vec = aligned && i + 4 <= end;
    Quad<T> p = load4(e.p, i, end, vec);  // (4) parameters
    const Quad<T> g = load4(e.g, i, end, vec);
    Quad<C> b{};  // (4) momentum buffer
    if (read_buf) b = load4(e.buf, i, end, vec);
    Quad<float> mst = load_master<T>(e.master, i, end, i + 4 <= end);  // (4) master values
    const philox::U32x4 w = quad_words(s.sr, s.seed, e.id, step, i);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const C pi = (sizeof(T) == 2 && e.master) ? C(mst.v[k]) : static_cast<C>(p.v[k]);
      C d = mul_rn(s.sign, static_cast<C>(g.v[k]));
      if (s.use_wd) d = add_rn(d, mul_rn(s.wd, pi));
      if (s.use_momentum) {
        const C bk = e.fresh ? d : add_rn(mul_rn(b.v[k], s.momentum), mul_rn(s.one_minus_dampening, d));
        b.v[k] = bk;
        d = s.nesterov ? add_rn(d, mul_rn(s.momentum, bk)) : bk;
      }
      const C r = add_rn(pi, mul_rn(s.neg_lr, d));
      if constexpr (sizeof(T) == 2) mst.v[k] = static_cast<float>(r);
      p.v[k] = to_param<T>(r, s.sr, w.v[k]);
    }
    if (s.use_momentum) store4(e.buf, b, i, end, vec);
    if constexpr (sizeof(T) == 2)
      if (e.master) store4(e.master, mst, i, end, i + 4 <= end && quad_aligned(e.master));
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
  float* master;   // null without a master copy
  float* step;     // capturable: the device step counter (already incremented)
  int64_t n;
  acc_t<T> neg_step_size, bc2_sqrt;  // normal mode: -lr / (1 - beta1^t), sqrt(1 - beta2^t)
  uint32_t id;                       // rounding stream of the tensor
  uint32_t sr_step;                  // normal mode: t
};

template <class C>
struct AdamScalars {
  optim_math::AdamFactors<C> f;  // normal mode (per-tensor factors come from the entry)
  bool l2, decoupled, amsgrad, maximize;
  bool sr, capturable;
  uint64_t seed;
  const double* hyper;  // capturable: optim_math::AdamSlot order, on the device
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    adam_kernel(const __grid_constant__ ChunkTable<AdamEntry<T>> table, const AdamScalars<acc_t<T>> s) {
  using C = acc_t<T>;
  using namespace optim_math;
  int64_t begin, end;
  const AdamEntry<T> e = block_entry(table, begin, end);
  AdamFactors<C> f = s.f;
  bool l2 = s.l2;
  uint32_t step = e.sr_step;
  if (s.capturable) {
    const double t = static_cast<double>(*e.step);
    f = adam_factors<C>(s.hyper, s.maximize, t);
    l2 = !s.decoupled && s.hyper[kAdamWeightDecay] != 0;
    step = static_cast<uint32_t>(t);
  } else {
    f.neg_step_size = e.neg_step_size;
    f.bc2_sqrt = e.bc2_sqrt;
  }
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
    Quad<float> mst = load_master<T>(e.master, i, end, i + 4 <= end);  // (4) master values
    const philox::U32x4 w = quad_words(s.sr, s.seed, e.id, step, i);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const C p0 = (sizeof(T) == 2 && e.master) ? C(mst.v[k]) : static_cast<C>(p.v[k]);
      C gi = mul_rn(f.sign, static_cast<C>(g.v[k]));
      if (l2) gi = add_rn(gi, mul_rn(f.wd, p0));
      m.v[k] = add_rn(mul_rn(m.v[k], f.beta1), mul_rn(f.one_minus_beta1, gi));
      C vi = add_rn(mul_rn(v.v[k], f.beta2), mul_rn(mul_rn(f.one_minus_beta2, gi), gi));
      v.v[k] = vi;
      if (s.amsgrad) {
        vi = nan_max(vmax.v[k], vi);
        vmax.v[k] = vi;
      }
      const C root = sqrt_rn(vi);
      C pi = p0;
      if (s.decoupled) pi = mul_rn(pi, f.decay);
      const C denom = add_rn(div_rn(root, f.bc2_sqrt), f.eps);
      const C r = add_rn(pi, mul_rn(f.neg_step_size, div_rn(m.v[k], denom)));
      if constexpr (sizeof(T) == 2) mst.v[k] = static_cast<float>(r);
      p.v[k] = to_param<T>(r, s.sr, w.v[k]);
    }
    store4(e.m, m, i, end, vec);
    store4(e.v, v, i, end, vec);
    if (s.amsgrad) store4(e.vmax, vmax, i, end, vec);
    if constexpr (sizeof(T) == 2)
      if (e.master) store4(e.master, mst, i, end, i + 4 <= end && quad_aligned(e.master));
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
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes, cudaStream_t stream,
              const StepExtras& x) {
  using C = acc_t<T>;
  static_assert(fits_arguments<SgdEntry<T>, SgdScalars<C>>());
  const bool momentum = h.momentum != 0;
  const bool capturable = x.hyper != nullptr;
  const bool sr = x.stochastic_rounding && std::is_same_v<T, BFloat16>;
  if (x.step_counts) increment_steps(x.step_counts, n_tensors, stream);
  const SgdScalars<C> s{C(h.maximize ? -1 : 1), C(h.weight_decay), C(h.momentum), C(1 - h.dampening), C(-h.lr),
                        h.weight_decay != 0,    momentum,          h.nesterov,    sr,                 capturable,
                        x.seed,                 x.hyper};
  pack_chunks<SgdEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        return SgdEntry<T>{params[t],
                           grads[t],
                           momentum ? momentum_buffers[t] : nullptr,
                           sizeof(T) == 2 && x.master ? x.master[t] : nullptr,
                           x.step_counts ? x.step_counts[t] : nullptr,
                           sizes[t],
                           momentum && fresh[t] != 0 ? 1u : 0u,
                           x.tensor_ids ? x.tensor_ids[t] : static_cast<uint32_t>(t),
                           x.sr_steps ? static_cast<uint32_t>(x.sr_steps[t]) : 0u};
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
               const int64_t* sizes, cudaStream_t stream, const StepExtras& x) {
  using C = acc_t<T>;
  static_assert(fits_arguments<AdamEntry<T>, AdamScalars<C>>());
  const bool capturable = x.hyper != nullptr;
  const bool sr = x.stochastic_rounding && std::is_same_v<T, BFloat16>;
  ZAE_CHECK(!capturable || x.step_counts, "adam_step: capturable mode needs step counters");
  if (capturable) increment_steps(x.step_counts, n_tensors, stream);
  const double own[optim_math::kAdamSlots] = {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay};
  const AdamScalars<C> s{optim_math::adam_factors<C>(own, h.maximize, 1.0),
                         !h.decoupled_weight_decay && h.weight_decay != 0,
                         h.decoupled_weight_decay,
                         h.amsgrad,
                         h.maximize,
                         sr,
                         capturable,
                         x.seed,
                         x.hyper};
  pack_chunks<AdamEntry<T>>(
      n_tensors, sizes,
      [&](int t) {
        // The CPU twin's per-tensor factors, computed the same way in double.
        C neg_step_size = 0, bc2_sqrt = 1;
        uint32_t step = 0;
        if (!capturable) {
          const auto f = optim_math::adam_factors<C>(own, h.maximize, steps[t]);
          neg_step_size = f.neg_step_size;
          bc2_sqrt = f.bc2_sqrt;
          step = static_cast<uint32_t>(steps[t]);
        }
        return AdamEntry<T>{params[t],
                            grads[t],
                            exp_avg[t],
                            exp_avg_sq[t],
                            h.amsgrad ? max_exp_avg_sq[t] : nullptr,
                            sizeof(T) == 2 && x.master ? x.master[t] : nullptr,
                            capturable ? x.step_counts[t] : nullptr,
                            sizes[t],
                            neg_step_size,
                            bc2_sqrt,
                            x.tensor_ids ? x.tensor_ids[t] : static_cast<uint32_t>(t),
                            step};
      },
      [&](const ChunkTable<AdamEntry<T>>& table, int blocks) {
        adam_kernel<T><<<blocks, kThreads, 0, stream>>>(table, s);
        CUDA_CHECK(cudaGetLastError());
      });
  CUDA_CHECK(cudaGetLastError());
}

bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

void upload_hyper(double* device_dst, const double* host_src, int n, cudaStream_t stream) {
  CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, static_cast<size_t>(n) * sizeof(double), cudaMemcpyHostToDevice,
                             stream));
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
                            const int64_t*, cudaStream_t, const StepExtras&);                                  \
  template void adam_step<T>(const AdamHyper&, int, T* const*, const T* const*, acc_t<T>* const*,              \
                             acc_t<T>* const*, acc_t<T>* const*, const double*, const int64_t*, cudaStream_t,  \
                             const StepExtras&);                                                               \
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
