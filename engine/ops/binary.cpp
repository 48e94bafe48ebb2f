// Elementwise binary ops with broadcasting and autograd, the comparisons, and the
// broadcast helpers (broadcast_shapes, sum_to) every broadcasting op's backward uses.
// Result dtype = promote_types(a, b) (float32 for division of integers); comparisons
// give bool and record nothing. Each input's gradient is reduced back to its shape
// with sum_to and returned in its dtype.
#include "engine/ops/binary.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"

namespace zae {

namespace {

using autograd::BackwardContext;

// A scalar operand as a 0-dim tensor: like's dtype, or float32 for a non-integer value
// next to an integer tensor (int64 next to bool).
Tensor wrap_scalar(double v, const Tensor& like) {
  ZAE_CHECK(like.defined(), "scalar operand next to an undefined tensor");
  DType dt = like.dtype();
  if (!is_floating(dt)) {
    bool integral = std::isfinite(v) && std::trunc(v) == v;
    dt = !integral ? DType::float32 : dt == DType::bool_ ? DType::int64 : dt;
  }
  return scalar_tensor(v, {.dtype = dt, .device = like.device()});
}

// Allocates the broadcast result of a (op) b.
Tensor binary_out(const Tensor& a, const Tensor& b, DType dt, const char* name) {
  ZAE_CHECK(a.defined() && b.defined(), name, ": undefined tensor");
  return Tensor::empty(broadcast_shapes(a.shape(), b.shape(), name), {.dtype = dt, .device = a.device()});
}

Tensor compute(BinaryOp op, const Tensor& a, const Tensor& b, DType dt, const char* name, double alpha = 1.0) {
  Tensor out = binary_out(a, b, dt, name);
  binary_into(op, out, a, b, alpha, name);
  return out;
}

DType arith_dtype(const Tensor& a, const Tensor& b, const char* name) {
  ZAE_CHECK(a.defined() && b.defined(), name, ": undefined tensor");
  return promote_types(a.dtype(), b.dtype());
}

// The gradient for an input of `shape` and dtype `dt` from a gradient of the broadcast result.
Tensor reduce_grad(const Tensor& g, const Shape& shape, DType dt) {
  Tensor r = sum_to(g, shape);
  return r.dtype() == dt ? r : r.to(dt);
}

Tensor comparison(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  return compute(op, a, b, DType::bool_, name);
}

// 1 where `win`, 0.5 where `tie`, else 0, in dtype dt (maximum/minimum gradient weights).
Tensor tie_weights(const Tensor& win, const Tensor& tie, DType dt) {
  return add(win.to(dt), tie.to(dt), 0.5);
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t sa = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t sb = i < n - b.size() ? 1 : b[i - (n - b.size())];
    ZAE_CHECK(sa == sb || sa == 1 || sb == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
              " cannot be broadcast (dim ", i, ": ", sa, " vs ", sb, ")");
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  ZAE_CHECK(grad.defined(), "sum_to: undefined tensor");
  if (grad.shape() == shape) return grad;
  const Shape& gs = grad.shape();
  ZAE_CHECK(gs.size() >= shape.size() || shape_numel(gs) == shape_numel(shape), "sum_to: cannot reduce shape ",
            shape_str(gs), " to ", shape_str(shape));
  if (gs.size() < shape.size()) return grad.reshape(shape);  // only leading 1s differ
  const size_t lead = gs.size() - shape.size();
  Shape dims;
  for (size_t d = 0; d < gs.size(); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
      continue;
    }
    int64_t want = shape[d - lead];
    ZAE_CHECK(want == gs[d] || want == 1, "sum_to: cannot reduce shape ", shape_str(gs), " to ", shape_str(shape));
    if (want == 1 && gs[d] != 1) dims.push_back(static_cast<int64_t>(d));
  }
  if (dims.empty()) return grad.reshape(shape);
  return sum(grad, dims, /*keepdim=*/true).reshape(shape);
}

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  Tensor out = compute(BinaryOp::add, a, b, arith_dtype(a, b, "add"), "add", alpha);
  autograd::record("AddBackward", {a, b}, out, {},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype(), alpha](
                       const Tensor& g, const BackwardContext& ctx) {
                     Tensor ga = ctx.needs(0) ? reduce_grad(g, sa, da) : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(alpha == 1.0 ? g : mul(g, alpha), sb, db) : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  Tensor out = compute(BinaryOp::sub, a, b, arith_dtype(a, b, "sub"), "sub", alpha);
  autograd::record("SubBackward", {a, b}, out, {},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype(), alpha](
                       const Tensor& g, const BackwardContext& ctx) {
                     Tensor ga = ctx.needs(0) ? reduce_grad(g, sa, da) : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(mul(g, -alpha), sb, db) : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = compute(BinaryOp::mul, a, b, arith_dtype(a, b, "mul"), "mul");
  // Save only what the needed gradients read: d/da = b, d/db = a.
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  autograd::record("MulBackward", {a, b}, out, {need_a ? b : Tensor(), need_b ? a : Tensor()},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](const Tensor& g,
                                                                                   const BackwardContext& ctx) {
                     Tensor ga = ctx.needs(0) ? reduce_grad(mul(g, ctx.saved[0]), sa, da) : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(mul(g, ctx.saved[1]), sb, db) : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  DType dt = arith_dtype(a, b, "div");
  if (!is_floating(dt)) dt = DType::float32;  // true division, as torch
  Tensor out = compute(BinaryOp::div, a, b, dt, "div");
  // d/da = 1 / b, d/db = -a / b^2.
  autograd::record("DivBackward", {a, b}, out, {a, b},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](const Tensor& g,
                                                                                   const BackwardContext& ctx) {
                     const Tensor& av = ctx.saved[0];
                     const Tensor& bv = ctx.saved[1];
                     Tensor ga = ctx.needs(0) ? reduce_grad(div(g, bv), sa, da) : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(neg(div(mul(g, av), mul(bv, bv))), sb, db) : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = compute(BinaryOp::maximum, a, b, arith_dtype(a, b, "maximum"), "maximum");
  autograd::record("MaximumBackward", {a, b}, out, {a, b},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](const Tensor& g,
                                                                                   const BackwardContext& ctx) {
                     const Tensor& av = ctx.saved[0];
                     const Tensor& bv = ctx.saved[1];
                     Tensor tie = eq(av, bv);
                     Tensor ga = ctx.needs(0) ? reduce_grad(mul(g, tie_weights(gt(av, bv), tie, g.dtype())), sa, da)
                                              : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(mul(g, tie_weights(lt(av, bv), tie, g.dtype())), sb, db)
                                              : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = compute(BinaryOp::minimum, a, b, arith_dtype(a, b, "minimum"), "minimum");
  autograd::record("MinimumBackward", {a, b}, out, {a, b},
                   [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](const Tensor& g,
                                                                                   const BackwardContext& ctx) {
                     const Tensor& av = ctx.saved[0];
                     const Tensor& bv = ctx.saved[1];
                     Tensor tie = eq(av, bv);
                     Tensor ga = ctx.needs(0) ? reduce_grad(mul(g, tie_weights(lt(av, bv), tie, g.dtype())), sa, da)
                                              : Tensor();
                     Tensor gb = ctx.needs(1) ? reduce_grad(mul(g, tie_weights(gt(av, bv), tie, g.dtype())), sb, db)
                                              : Tensor();
                     return std::vector<Tensor>{ga, gb};
                   });
  return out;
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor out = compute(BinaryOp::pow, base, exponent, arith_dtype(base, exponent, "pow"), "pow");
  // d/da = b a^(b-1) (0 where b == 0); d/db = a^b log(a) (0 where a == 0 and b >= 0), as torch.
  autograd::record(
      "PowBackward", {base, exponent}, out, {base, exponent, out},
      [sa = base.shape(), sb = exponent.shape(), da = base.dtype(), db = exponent.dtype()](
          const Tensor& g, const BackwardContext& ctx) {
        const Tensor& av = ctx.saved[0];
        const Tensor& bv = ctx.saved[1];
        const Tensor& y = ctx.saved[2];
        Tensor zero = scalar_tensor(0.0, {.dtype = g.dtype(), .device = g.device()});
        Tensor ga, gb;
        if (ctx.needs(0)) {
          Tensor d = mul(bv, pow(av, sub(bv, 1.0)));
          ga = reduce_grad(where(eq(bv, 0.0), zero, mul(g, d)), sa, da);
        }
        if (ctx.needs(1)) {
          Tensor a_zero = eq(av, 0.0);
          Tensor mask = where(a_zero, ge(bv, 0.0), a_zero);  // a == 0 and b >= 0
          gb = reduce_grad(where(mask, zero, mul(g, mul(y, log(av)))), sb, db);
        }
        return std::vector<Tensor>{ga, gb};
      });
  return out;
}

Tensor add(const Tensor& a, double b) { return add(a, wrap_scalar(b, a)); }
Tensor sub(const Tensor& a, double b) { return sub(a, wrap_scalar(b, a)); }
Tensor mul(const Tensor& a, double b) { return mul(a, wrap_scalar(b, a)); }
Tensor div(const Tensor& a, double b) { return div(a, wrap_scalar(b, a)); }

Tensor eq(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return comparison(BinaryOp::ge, a, b, "ge"); }
Tensor eq(const Tensor& a, double b) { return eq(a, wrap_scalar(b, a)); }
Tensor ne(const Tensor& a, double b) { return ne(a, wrap_scalar(b, a)); }
Tensor lt(const Tensor& a, double b) { return lt(a, wrap_scalar(b, a)); }
Tensor le(const Tensor& a, double b) { return le(a, wrap_scalar(b, a)); }
Tensor gt(const Tensor& a, double b) { return gt(a, wrap_scalar(b, a)); }
Tensor ge(const Tensor& a, double b) { return ge(a, wrap_scalar(b, a)); }

}  // namespace zae
