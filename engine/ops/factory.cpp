// Factories. Constant and random fills (full/zeros/ones, rand/randn/randint) run on the
// tensor's device: CPU kernels or CUDA kernels that draw the same Philox numbers, so the
// same generator state gives the same values on every device. arange, linspace, eye and
// tensor() build their values on the CPU and move them to the requested device.
#include "engine/ops/factory.h"

#include <cmath>

#include "engine/ops/backend.h"
#include "engine/ops/copy.h"
#include "engine/ops/iter.h"
#include "kernels/cpu/fill.h"
#include "kernels/philox.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/launch.h"
#include "kernels/cuda/fill.h"
#endif

namespace zae {

namespace {
// Builds the tensor on the CPU with `fill_cpu`, then moves it to opts.device.
template <class Fill>
Tensor make_on_cpu(const Shape& shape, TensorOptions opts, Fill&& fill_cpu) {
  Tensor host = Tensor::empty(shape, {.dtype = opts.dtype});
  fill_cpu(host);
  Tensor out = opts.device.is_cpu() ? host : host.to(opts.device);
  if (opts.requires_grad) out.requires_grad_(true);
  return out;
}

// t[...] = value converted to t's dtype, on t's device.
void fill_tensor(const Tensor& t, double value) {
  auto it = make_iter<1>({&t}, "fill");
  const Backend backend = elementwise_backend("fill", t.device(), t.dtype());
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v;
    if constexpr (std::is_same_v<T, bool>)
      v = value != 0.0;
    else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
      v = T(static_cast<float>(value));
    else
      v = static_cast<T>(value);
    T* p = static_cast<T*>(t.raw_data());
    if (backend == Backend::cpu) {
      kernels::cpu::fill<T>(it, p, v);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(t.device());
      kernels::cuda::fill<T>(it, p, v, scope.stream());
#endif
    }
  });
}

// An uninitialised tensor on opts.device for a fill (allocation errors first: they say
// when a build has no CUDA backend at all), and the backend that fills it.
Tensor empty_for_fill(const Shape& shape, TensorOptions opts, const char* op, Backend& backend) {
  Tensor t = Tensor::empty(shape, {.dtype = opts.dtype, .device = opts.device});
  backend = elementwise_backend(op, opts.device, opts.dtype);
  return t;
}

Tensor finish(Tensor t, TensorOptions opts) {
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

Generator& gen_or_default(Generator* gen) { return gen ? *gen : default_generator(); }
}  // namespace

Tensor empty(const Shape& shape, TensorOptions opts) { return Tensor::empty(shape, opts); }

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  Tensor t = Tensor::empty(shape, {.dtype = opts.dtype, .device = opts.device});
  fill_tensor(t, value);
  return finish(t, opts);
}
Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  ZAE_CHECK(step != 0.0 && std::isfinite(step), "arange: step must be finite and non-zero, got ", step);
  ZAE_CHECK(std::isfinite(start) && std::isfinite(end), "arange: start and end must be finite, got ", start, ", ",
            end);
  ZAE_CHECK((end - start) / step >= 0 || start == end, "arange: step ", step, " moves away from end (start ", start,
            ", end ", end, ")");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  n = std::max<int64_t>(n, 0);
  return make_on_cpu({n}, opts, [&](const Tensor& t) {
    dispatch_numeric(t.dtype(), "arange", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* p = static_cast<T*>(t.raw_data());
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
    });
  });
}

Tensor arange(int64_t end, TensorOptions opts) { return arange(0.0, static_cast<double>(end), 1.0, opts); }

Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  ZAE_CHECK(steps >= 0, "linspace: number of steps must be non-negative, got ", steps);
  return make_on_cpu({steps}, opts, [&](const Tensor& t) {
    dispatch_floating(t.dtype(), "linspace", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* p = static_cast<T*>(t.raw_data());
      double delta = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
      // Fill from both ends (as PyTorch does) so the last value is exactly `end`;
      // a single step is `start`.
      int64_t half = steps == 1 ? 1 : steps / 2;
      for (int64_t i = 0; i < steps; ++i) {
        double v = i < half ? start + delta * static_cast<double>(i)
                            : end - delta * static_cast<double>(steps - 1 - i);
        p[i] = static_cast<T>(static_cast<acc_t<T>>(v));
      }
    });
  });
}

Tensor eye(int64_t n, int64_t m, TensorOptions opts) {
  if (m == -1) m = n;
  ZAE_CHECK(n >= 0 && m >= 0, "eye: sizes must be non-negative, got n = ", n, ", m = ", m);
  return make_on_cpu({n, m}, opts, [&](const Tensor& t) {
    fill_tensor(t, 0.0);
    for (int64_t i = 0; i < std::min(n, m); ++i) fill_tensor(t.select(0, i).select(0, i), 1.0);
  });
}

Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) {
  Backend backend;
  Tensor t = empty_for_fill(shape, opts, "rand", backend);
  dispatch_floating(t.dtype(), "rand", [&](auto tag) {
    using T = typename decltype(tag)::type;
    uint64_t per_block = std::is_same_v<T, double> ? 2 : 4;
    auto d = gen_or_default(gen).reserve(philox::blocks_for(static_cast<uint64_t>(t.numel()), per_block));
    T* p = static_cast<T*>(t.raw_data());
    if (backend == Backend::cpu) {
      kernels::cpu::uniform<T>(p, t.numel(), d.seed, d.offset, 0.0, 1.0);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(t.device());
      kernels::cuda::uniform<T>(p, t.numel(), d.seed, d.offset, 0.0, 1.0, scope.stream());
#endif
    }
  });
  return finish(t, opts);
}

Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  Backend backend;
  Tensor t = empty_for_fill(shape, opts, "randn", backend);
  dispatch_floating(t.dtype(), "randn", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto d = gen_or_default(gen).reserve(philox::blocks_for(static_cast<uint64_t>(t.numel()), 4));
    T* p = static_cast<T*>(t.raw_data());
    if (backend == Backend::cpu) {
      kernels::cpu::normal<T>(p, t.numel(), d.seed, d.offset, 0.0, 1.0);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(t.device());
      kernels::cuda::normal<T>(p, t.numel(), d.seed, d.offset, 0.0, 1.0, scope.stream());
#endif
    }
  });
  return finish(t, opts);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts, Generator* gen) {
  ZAE_CHECK(low < high, "randint: low (", low, ") must be less than high (", high, ")");
  Backend backend;
  Tensor t = empty_for_fill(shape, opts, "randint", backend);
  dispatch_numeric(t.dtype(), "randint", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto d = gen_or_default(gen).reserve(philox::blocks_for(static_cast<uint64_t>(t.numel()), 2));
    T* p = static_cast<T*>(t.raw_data());
    if (backend == Backend::cpu) {
      kernels::cpu::randint<T>(p, t.numel(), d.seed, d.offset, low, high);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(t.device());
      kernels::cuda::randint<T>(p, t.numel(), d.seed, d.offset, low, high, scope.stream());
#endif
    }
  });
  return finish(t, opts);
}

template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape_in, TensorOptions opts) {
  Shape shape = shape_in.empty() ? Shape{static_cast<int64_t>(values.size())} : shape_in;
  ZAE_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "tensor: ", values.size(),
            " values do not fill shape ", shape_str(shape));
  Tensor host = Tensor::empty(shape, {.dtype = dtype_of<T>()});
  if (!values.empty()) std::copy(values.begin(), values.end(), static_cast<T*>(host.raw_data()));
  Tensor out = host.to(opts.device, opts.dtype);
  if (opts.requires_grad) out.requires_grad_(true);
  return out;
}
template Tensor tensor<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor tensor<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor tensor<int32_t>(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor tensor<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);

Tensor tensor(std::initializer_list<double> values, const Shape& shape, TensorOptions opts) {
  return tensor(std::vector<double>(values), shape, opts);
}

Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor empty_like(const Tensor& t) { return empty(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, {.dtype = t.dtype(), .device = t.device()});
}
Tensor rand_like(const Tensor& t, Generator* gen) {
  return rand(t.shape(), {.dtype = t.dtype(), .device = t.device()}, gen);
}
Tensor randn_like(const Tensor& t, Generator* gen) {
  return randn(t.shape(), {.dtype = t.dtype(), .device = t.device()}, gen);
}

}  // namespace zae
