// Post-accumulate-grad hooks: callbacks that run right after backward has added a
// leaf's gradient for this pass into its .grad (PyTorch's
// register_post_accumulate_grad_hook). Data parallel training uses them to start
// reducing a bucket of gradients while backward is still computing the others.
// Invariants: a hook runs once per backward pass per leaf that received a gradient
// (a leaf used several times in the forward gets its summed gradient once), on the
// thread that runs backward, in registration order; a hook that throws aborts the
// backward pass with its exception. Hooks are not copied by detach() or clone().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace zae::autograd {

using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;

/// The hooks of one leaf (TensorImpl::hooks).
struct LeafHooks {
  std::vector<std::pair<uint64_t, PostAccumulateGradHook>> post_accumulate;
};

/// Registers `hook` on `leaf` (a tensor that requires grad and has no grad_fn); returns
/// an id for remove_post_accumulate_grad_hook.
uint64_t register_post_accumulate_grad_hook(const Tensor& leaf, PostAccumulateGradHook hook);
/// Removes the hook with this id (no-op when it is gone already).
void remove_post_accumulate_grad_hook(const Tensor& leaf, uint64_t id);
/// Runs the leaf's hooks (called by AccumulateGrad).
void run_post_accumulate_grad_hooks(const std::shared_ptr<TensorImpl>& leaf);

}  // namespace zae::autograd
