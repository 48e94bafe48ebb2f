#include "nn/clip_grad.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/binary.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/unary.h"

namespace zae::nn {
namespace {

// The defined gradients of `params`, checked to be floating.
std::vector<Tensor> grads_of(const std::vector<Tensor>& params, const char* fn) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    ZAE_CHECK(params[i].defined(), fn, ": parameter ", i, " is an undefined tensor");
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    ZAE_CHECK(is_floating(g.dtype()), fn, ": gradient of parameter ", i, " has non-floating dtype ", g.dtype());
    grads.push_back(g);
  }
  return grads;
}

}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  ZAE_CHECK(!std::isnan(max_norm) && max_norm >= 0.0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  ZAE_CHECK(norm_type > 0.0, "clip_grad_norm_: norm_type must be > 0 or infinity, got ", norm_type);
  std::vector<Tensor> grads = grads_of(params, "clip_grad_norm_");
  if (grads.empty()) return scalar_tensor(0.0);
  NoGradGuard no_grad;

  DType dt = grads[0].dtype();
  for (const Tensor& g : grads) dt = promote_types(dt, g.dtype());
  const Device dev = grads[0].device();
  // Per-gradient norms, then the norm of those: the global norm of all elements.
  std::vector<Tensor> norms;
  for (const Tensor& g : grads) {
    if (g.numel() == 0) continue;  // contributes nothing (and the inf-norm of nothing is undefined)
    norms.push_back(norm(g, norm_type).to(dev, dt));
  }
  if (norms.empty()) return scalar_tensor(0.0, {.dtype = dt, .device = dev});
  Tensor total = norm(stack(norms), norm_type);  // 0-dim
  if (error_if_nonfinite) {
    const double t = total.item();
    ZAE_CHECK(std::isfinite(t), "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ", t,
              " (non-finite), so it cannot be clipped; pass error_if_nonfinite=false to scale by it anyway");
  }
  // min(1, max_norm / (total + 1e-6)), computed in the norm's dtype as PyTorch does.
  Tensor coef = clamp(div(scalar_tensor(max_norm, {.dtype = dt, .device = dev}), add(total, 1e-6)), std::nullopt, 1.0);
  for (Tensor& g : grads) g.mul_(coef.to(g.device(), g.dtype()));
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  ZAE_CHECK(!std::isnan(clip_value) && clip_value >= 0.0, "clip_grad_value_: clip_value must be >= 0, got ",
            clip_value);
  std::vector<Tensor> grads = grads_of(params, "clip_grad_value_");
  NoGradGuard no_grad;
  for (const Tensor& g : grads) {
    binary_into(BinaryOp::maximum, g, g, scalar_tensor(-clip_value, {.dtype = g.dtype(), .device = g.device()}), 1.0,
                "clip_grad_value_");
    binary_into(BinaryOp::minimum, g, g, scalar_tensor(clip_value, {.dtype = g.dtype(), .device = g.device()}), 1.0,
                "clip_grad_value_");
    g.storage()->bump_version();
  }
}

}  // namespace zae::nn
