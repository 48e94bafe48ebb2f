// batch_norm: torch.nn.functional.batch_norm (autograd-aware), the stateless core of
// nn::BatchNorm1d / BatchNorm2d.
#pragma once

#include "engine/tensor.h"

namespace zae {

/// Normalises x (N, C, *) per channel over the batch and spatial dims, then applies
/// the optional per-channel affine weight/bias (C).
/// training: uses the batch mean and biased variance; when running_mean/running_var
///   (C) are given, updates them in place (without recording) as
///   running = (1 - momentum) * running + momentum * batch, with the *unbiased* batch
///   variance (momentum = 1 / k on the k-th batch gives the cumulative average).
///   Needs more than one value per channel.
/// eval (training = false): uses running_mean/running_var, which are then required.
/// Gradients flow to x, weight and bias (one fused backward); never to the running stats.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), bool training = false,
                  double momentum = 0.1, double eps = 1e-5);

}  // namespace zae
