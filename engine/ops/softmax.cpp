// softmax and log_softmax along one dim: one fused kernel each way, one graph node.
// Invariants: the input is made contiguous and viewed as (outer, K, inner) around
// `dim`; the node saves only the OUTPUT y (both backward formulas need only y and
// g); a 0-dim input is one lane of size 1 (softmax 1, log_softmax 0).
// Devices: CPU kernels (kernels/cpu/softmax.h), and in a CUDA build their CUDA twins
// (kernels/cuda/softmax.h) on the thread's current stream of the tensor's device.
#include "engine/autocast.h"
#include "engine/ops/backend.h"
#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/softmax.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/softmax.h"
#endif

namespace zae {

namespace {

// (outer, K, inner) of a shape around dim d.
struct Lanes {
  int64_t outer = 1, K = 1, inner = 1;
};

Lanes lanes_of(const Shape& shape, int64_t d) {
  Lanes l;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < d)
      l.outer *= shape[i];
    else if (i == d)
      l.K = shape[i];
    else
      l.inner *= shape[i];
  }
  return l;
}

// dx from g and the saved output y (no recording: runs inside a backward).
Tensor softmax_backward_impl(const char* op, const Tensor& g_in, const Tensor& y, int64_t d, bool log) {
  ZAE_CHECK(g_in.shape() == y.shape(), op, " backward: gradient shape ", shape_str(g_in.shape()),
            " does not match the output shape ", shape_str(y.shape()));
  Tensor g = dense_data(g_in.dtype() == y.dtype() ? g_in : g_in.to(y.dtype()));
  Tensor dx = Tensor::empty(y.shape(), {.dtype = y.dtype(), .device = y.device()});
  Lanes l = lanes_of(y.shape(), d);
  ZAE_CHECK(has_kernels_for(y.device()), op, " backward: not implemented for device ", y.device(), " (dtype ",
            y.dtype(), ") in this build");
  dispatch_floating(y.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (y.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(y.device().index);
      kernels::cuda::softmax_backward<T>(g.data<T>(), y.data<T>(), dx.data<T>(), l.outer, l.K, l.inner, log,
                                         cuda::current_stream(y.device().index));
#endif
    } else {
      kernels::cpu::softmax_backward<T>(g.data<T>(), y.data<T>(), dx.data<T>(), l.outer, l.K, l.inner, log);
    }
  });
  return dx;
}

Tensor softmax_op(const char* op, const char* node_name, const Tensor& x_arg, int64_t dim, bool log) {
  const Tensor x_in = autocast::to_float(x_arg);
  ZAE_CHECK(x_in.defined(), op, ": undefined input tensor");
  const int64_t d = x_in.wrap_dim(dim, op);
  ZAE_CHECK(has_kernels_for(x_in.device()), op, ": not implemented for device ", x_in.device(), " (dtype ",
            x_in.dtype(), ") in this build");
  Tensor x = dense_data(x_in);
  Tensor y = Tensor::empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Lanes l = lanes_of(x.shape(), d);
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(x.device().index);
      kernels::cuda::softmax_forward<T>(x.data<T>(), y.data<T>(), l.outer, l.K, l.inner, log,
                                        cuda::current_stream(x.device().index));
#endif
    } else {
      kernels::cpu::softmax_forward<T>(x.data<T>(), y.data<T>(), l.outer, l.K, l.inner, log);
    }
  });
  autograd::record(node_name, {x_in}, y, {y}, [op, d, log](const Tensor& g, const autograd::BackwardContext& ctx) {
    return std::vector<Tensor>{softmax_backward_impl(op, g, ctx.saved[0], d, log)};
  });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op("softmax", "SoftmaxBackward", x, dim, false); }

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_op("log_softmax", "LogSoftmaxBackward", x, dim, true);
}

}  // namespace zae
