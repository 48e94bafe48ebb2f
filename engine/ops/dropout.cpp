// dropout: in training, zeroes each element with probability p and scales the
// rest by 1 / (1 - p); the identity (the input itself) when !training or p == 0;
// all zeros when p == 1. The mask comes from the Philox generator (one counter
// block per 4 elements, element i kept iff uniform_float(seed, offset, i) >= p)
// and is saved as a bool tensor for backward: d_x = g * mask * scale. CPU and CUDA
// kernels follow the same rule, so a seed gives the same mask on every device.
#include "kernels/cpu/dropout.h"

#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/factory.h"
#include "engine/ops/iter.h"
#include "engine/ops/nn.h"
#include "kernels/philox.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/launch.h"
#include "kernels/cuda/dropout.h"
#endif

namespace zae {

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  ZAE_CHECK(x.defined(), "dropout: undefined input tensor");
  ZAE_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  ZAE_CHECK(is_floating(x.dtype()), "dropout: dtype ", x.dtype(), " is not supported (expected a floating dtype)");
  const Backend backend = elementwise_backend("dropout", x.device(), x.dtype());

  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor mask = empty(x.shape(), {.dtype = DType::bool_, .device = x.device()});
  Generator& g = gen != nullptr ? *gen : default_generator();
  const auto draw = g.reserve(philox::blocks_for(static_cast<uint64_t>(x.numel()), 4));
  auto it = make_iter<3>({&out, &x, &mask}, "dropout");
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    const T* xs = static_cast<const T*>(x.raw_data());
    bool* m = mask.data<bool>();
    if (backend == Backend::cpu) {
      kernels::cpu::dropout_forward<T>(it, o, xs, m, static_cast<float>(p), scale, draw.seed, draw.offset);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(x.device());
      kernels::cuda::dropout_forward<T>(it, o, xs, m, static_cast<float>(p), scale, draw.seed, draw.offset,
                                        scope.stream());
#endif
    }
  });

  autograd::record("DropoutBackward", {x}, out, {mask}, [scale](const Tensor& grad, const auto& ctx) {
    const Tensor& m = ctx.saved[0];
    ZAE_CHECK(grad.device() == m.device(), "dropout backward: gradient on ", grad.device(), ", mask on ", m.device());
    const Backend bw = elementwise_backend("dropout backward", grad.device(), grad.dtype());
    Tensor d_x = empty(grad.shape(), {.dtype = grad.dtype(), .device = grad.device()});
    auto bit = make_iter<3>({&d_x, &grad, &m}, "dropout backward");
    dispatch_floating(grad.dtype(), "dropout backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* d = d_x.data<T>();
      const T* gs = static_cast<const T*>(grad.raw_data());
      const bool* ms = m.data<bool>();
      if (bw == Backend::cpu) {
        kernels::cpu::dropout_backward<T>(bit, d, gs, ms, scale);
      } else {
#ifdef ZAE_WITH_CUDA
        cuda::LaunchScope scope(grad.device());
        kernels::cuda::dropout_backward<T>(bit, d, gs, ms, scale, scope.stream());
#endif
      }
    });
    return std::vector<Tensor>{d_x};
  });
  return out;
}

}  // namespace zae
