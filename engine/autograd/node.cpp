#include "engine/autograd/node.h"

#include <atomic>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/hooks.h"
#include "engine/ops/binary.h"

namespace zae::autograd {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
}

SavedTensor::SavedTensor(const Tensor& t) : was_defined_(t.defined()) {
  if (t.defined()) {
    tensor_ = t.detach();
    version_ = t.version();
  }
}

const Tensor& SavedTensor::unpack(const std::string& node_name) const {
  if (!was_defined_) return tensor_;
  ZAE_CHECK(tensor_.defined(), "trying to backward through the graph a second time (", node_name,
            " has already freed its saved tensors); call backward(..., retain_graph=true) the first time");
  ZAE_CHECK(tensor_.version() == version_, "a tensor saved by ", node_name,
            " for the backward pass was modified by an in-place operation (saved at version ", version_,
            ", now version ", tensor_.version(), ", shape ", shape_str(tensor_.shape()), ")");
  return tensor_;
}

Node::~Node() {
  // Nodes whose last owner is this chain are unlinked here and destroyed one at a time
  // with their edges already moved out, instead of recursively through ~shared_ptr.
  std::vector<std::shared_ptr<Node>> pending;
  auto take_edges = [&pending](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.fn && e.fn.use_count() == 1) pending.push_back(std::move(e.fn));
    edges.clear();
  };
  take_edges(next_edges);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    take_edges(n->next_edges);
  }  // n is destroyed here with no edges left
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_output) {
  NoGradGuard no_grad;
  Tensor leaf(leaf_);
  ZAE_CHECK(grad_output.shape() == leaf.shape(), "AccumulateGrad: gradient of shape ", shape_str(grad_output.shape()),
            " does not match the leaf's shape ", shape_str(leaf.shape()));
  Tensor g = grad_output.dtype() == leaf.dtype() ? grad_output : grad_output.to(leaf.dtype());
  if (!leaf_->grad) {
    // Own a fresh contiguous buffer: the incoming gradient may alias another leaf's.
    leaf_->grad = g.clone().impl_ptr();
  } else {
    Tensor(leaf_->grad).add_(g);
  }
  run_post_accumulate_grad_hooks(leaf_);
  return {};
}

FunctionNode::FunctionNode(std::string name, std::vector<Tensor> saved, BackwardFn fn)
    : name_(std::move(name)), fn_(std::move(fn)) {
  saved_.reserve(saved.size());
  for (const Tensor& t : saved) saved_.emplace_back(t);
}

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
  BackwardContext ctx;
  ctx.saved.reserve(saved_.size());
  for (const SavedTensor& s : saved_) ctx.saved.push_back(s.unpack(name_));
  ctx.needs_input_grad.reserve(next_edges.size());
  for (const Edge& e : next_edges) ctx.needs_input_grad.push_back(e.fn != nullptr);
  std::vector<Tensor> grads = fn_(grad_output, ctx);
  ZAE_CHECK(grads.size() == next_edges.size(), name_, " returned ", grads.size(), " gradients for ",
            next_edges.size(), " inputs");
  return grads;
}

void FunctionNode::release() {
  for (SavedTensor& s : saved_) s.release();
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.requires_grad) return nullptr;
  std::shared_ptr<Node> acc = impl.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl.grad_accumulator = acc;
  }
  return acc;
}

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output, std::vector<Tensor> saved,
            BackwardFn fn) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode>(name, std::move(saved), std::move(fn));
  node->sequence_nr = next_sequence_nr.fetch_add(1, std::memory_order_relaxed);
  node->next_edges.reserve(inputs.size());
  for (const Tensor& in : inputs) node->next_edges.push_back(Edge{gradient_edge(in)});
  TensorImpl& out = output.impl();
  out.grad_fn = std::move(node);
  out.requires_grad = true;
}

}  // namespace zae::autograd
