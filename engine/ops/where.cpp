// where(cond, a, b) and masked_fill(x, mask, value) with autograd.
// Invariants: cond/mask are bool tensors on the operands' device; where broadcasts
// all three operands and computes in promote_types(a, b); masked_fill keeps x's shape
// and dtype (the mask must broadcast to x). Gradients are masked with zeros, then
// reduced to each input's shape with sum_to.
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/binary.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"
#include "engine/ops/iter.h"
#include "kernels/cpu/binary.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/launch.h"
#include "kernels/cuda/binary.h"
#endif

namespace zae {

namespace {

using autograd::BackwardContext;

Tensor as_dtype(const Tensor& t, DType dt) {
  if (t.dtype() == dt) return t;
  Tensor c = Tensor::empty(t.shape(), {.dtype = dt, .device = t.device()});
  copy_into(c, t);
  return c;
}

// out = cond ? a : b over `shape` in dtype dt, without recording.
Tensor select_into_new(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape, DType dt,
                       const char* op) {
  ZAE_CHECK(cond.device() == a.device() && a.device() == b.device(), op,
            ": expected all tensors on one device, got the condition on ", cond.device(), ", the first input on ",
            a.device(), " and the second input on ", b.device());
  const Backend backend = elementwise_backend(op, cond.device(), dt);
  Tensor out = Tensor::empty(shape, {.dtype = dt, .device = a.device()});
  if (out.numel() == 0) return out;
  Tensor ac = as_dtype(a, dt);
  Tensor bc = as_dtype(b, dt);
  auto it = make_iter<4>({&out, &cond, &ac, &bc}, op);
  dispatch_all(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = static_cast<T*>(out.raw_data());
    const bool* c = static_cast<const bool*>(cond.raw_data());
    const T* x = static_cast<const T*>(ac.raw_data());
    const T* y = static_cast<const T*>(bc.raw_data());
    if (backend == Backend::cpu) {
      kernels::cpu::where<T>(it, o, c, x, y);
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::LaunchScope scope(out.device());
      kernels::cuda::where<T>(it, o, c, x, y, scope.stream());
#endif
    }
  });
  return out;
}

Tensor zero_like_grad(const Tensor& g) { return scalar_tensor(0.0, {.dtype = g.dtype(), .device = g.device()}); }

Tensor reduce_grad(const Tensor& g, const Shape& shape, DType dt) {
  Tensor r = sum_to(g, shape);
  return r.dtype() == dt ? r : r.to(dt);
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ZAE_CHECK(cond.defined() && a.defined() && b.defined(), "where: undefined tensor");
  ZAE_CHECK(cond.dtype() == DType::bool_, "where: the condition must be a bool tensor, got dtype ", cond.dtype(),
            " (shape ", shape_str(cond.shape()), "); compare first, e.g. gt(x, 0)");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = select_into_new(cond, a, b, shape, promote_types(a.dtype(), b.dtype()), "where");
  autograd::record("WhereBackward", {a, b}, out, {cond},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](const Tensor& g,
                                                                                   const BackwardContext& ctx) {
                     const Tensor& c = ctx.saved[0];
                     Tensor zero = zero_like_grad(g);
                     Tensor ga = ctx.needs(0) ? reduce_grad(where(c, g, zero), sa, da) : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(where(c, zero, g), sb, db) : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  ZAE_CHECK(x.defined() && mask.defined(), "masked_fill: undefined tensor");
  ZAE_CHECK(mask.dtype() == DType::bool_, "masked_fill: the mask must be a bool tensor, got dtype ", mask.dtype(),
            " (shape ", shape_str(mask.shape()), ")");
  ZAE_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(), "masked_fill: mask of shape ",
            shape_str(mask.shape()), " cannot be broadcast to the input's shape ", shape_str(x.shape()));
  ZAE_CHECK(is_floating(x.dtype()) || std::isfinite(value), "masked_fill: value ", value,
            " cannot be stored in dtype ", x.dtype());
  Tensor fill = scalar_tensor(value, {.dtype = x.dtype(), .device = x.device()});
  Tensor out = select_into_new(mask, fill, x, x.shape(), x.dtype(), "masked_fill");
  autograd::record("MaskedFillBackward", {x}, out, {mask}, [](const Tensor& g, const BackwardContext& ctx) {
    return std::vector<Tensor>{where(ctx.saved[0], zero_like_grad(g), g)};
  });
  return out;
}

}  // namespace zae
