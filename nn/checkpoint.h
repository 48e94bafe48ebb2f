// Activation checkpointing (torch.utils.checkpoint's idea): y = fn(x) is computed without
// recording fn's graph, so none of fn's intermediate activations stay alive until backward;
// one node keeps only x. Its backward re-runs fn(x) with grad recording on - with the default
// generator rewound to where the forward drew its random numbers (dropout masks repeat) and
// under the forward's autocast dtype - and backpropagates the incoming gradient through that
// recomputed graph: d x, and d p for every p in `params` (the parameters fn uses), which reach
// their .grad through this node's edges like any op's (hooks and DDP see them normally).
// Cost: fn runs twice (forward + recompute); memory: fn's activations only inside backward.
//
// Invariants: fn must be deterministic given x, its parameters and the generator state, and
// must use no parameter outside `params` that needs a gradient (those would get none);
// under no-grad (or when neither x nor any param requires grad) checkpoint is just fn(x).
#pragma once

#include <functional>
#include <vector>

#include "engine/tensor.h"
#include "nn/module.h"

namespace zae::nn {

/// fn(x) with its activations recomputed in backward (see the file comment).
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const std::vector<Tensor>& params);

/// module.forward(x) checkpointed, with the module's parameters (all of them, recursively).
Tensor checkpoint(Layer& module, const Tensor& x);

}  // namespace zae::nn
