// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
// Both modify the .grad() tensors of the given parameters in place under
// NoGradGuard; parameters without a gradient are skipped. Failed calls (bad
// arguments, a non-finite norm with error_if_nonfinite) change no gradient.
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace zae::nn {

/// Scales all gradients together so that their global p-norm (the norm of the vector of
/// per-gradient norms; p = 2 by default, any p > 0, or infinity for the largest |g|) is
/// at most max_norm: with total the norm before clipping, every gradient is multiplied by
/// min(1, max_norm / (total + 1e-6)). Returns total as a 0-dim tensor (the promoted dtype
/// of the gradients, on their device; 0 when no parameter has a gradient). With
/// error_if_nonfinite, a NaN or infinite total is an error naming it.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element into [-clip_value, clip_value] (clip_value >= 0).
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace zae::nn
