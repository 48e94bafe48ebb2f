#include "engine/autograd/hooks.h"

#include <algorithm>
#include <atomic>

#include "engine/error.h"

namespace zae::autograd {

namespace {
std::atomic<uint64_t> next_hook_id{1};
}

uint64_t register_post_accumulate_grad_hook(const Tensor& leaf, PostAccumulateGradHook hook) {
  ZAE_CHECK(leaf.defined(), "register_post_accumulate_grad_hook: the tensor is undefined");
  ZAE_CHECK(leaf.requires_grad() && leaf.grad_fn() == nullptr,
            "register_post_accumulate_grad_hook: only leaves that require grad accumulate gradients (shape ",
            shape_str(leaf.shape()), ", requires_grad ", leaf.requires_grad(), ", has grad_fn ",
            leaf.grad_fn() != nullptr, ")");
  ZAE_CHECK(hook != nullptr, "register_post_accumulate_grad_hook: empty hook");
  TensorImpl& impl = *leaf.impl_ptr();
  if (!impl.hooks) impl.hooks = std::make_shared<LeafHooks>();
  const uint64_t id = next_hook_id.fetch_add(1);
  impl.hooks->post_accumulate.emplace_back(id, std::move(hook));
  return id;
}

void remove_post_accumulate_grad_hook(const Tensor& leaf, uint64_t id) {
  if (!leaf.defined() || !leaf.impl_ptr()->hooks) return;
  auto& hooks = leaf.impl_ptr()->hooks->post_accumulate;
  hooks.erase(std::remove_if(hooks.begin(), hooks.end(), [id](const auto& h) { return h.first == id; }), hooks.end());
}

void run_post_accumulate_grad_hooks(const std::shared_ptr<TensorImpl>& leaf) {
  if (!leaf->hooks || leaf->hooks->post_accumulate.empty()) return;
  // A copy: a hook may register or remove hooks.
  const auto hooks = leaf->hooks->post_accumulate;
  const Tensor t(leaf);
  for (const auto& [id, hook] : hooks) hook(t);
}

}  // namespace zae::autograd
