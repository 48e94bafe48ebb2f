// Graph nodes of the dynamic tape. Each differentiable op records one Node per
// output tensor: it holds edges to the nodes of its inputs and the tensors its
// backward needs (saved detached, with the storage version at save time).
// A leaf that requires grad is reached through its AccumulateGrad node.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace zae::autograd {

class Node;

/// Where a gradient flows: the node that produced an input (null: no gradient needed).
struct Edge {
  std::shared_ptr<Node> fn;
};

/// A tensor saved for backward. Unpacking checks it was not modified in place since.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  /// The saved value; throws if released or modified in place since it was saved.
  const Tensor& unpack(const std::string& node_name) const;
  void release() { tensor_ = Tensor(); }

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
  bool was_defined_ = false;
};

class Node {
 public:
  /// Tears down the chain of nodes only this one keeps alive iteratively, so that
  /// dropping a very deep graph cannot overflow the stack.
  virtual ~Node();
  /// Gradients for next_edges (same order) from the gradient of this node's output.
  /// An undefined entry means "no gradient" (treated as zero).
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  /// Frees saved tensors after a backward pass that did not retain the graph.
  virtual void release() {}
  /// Whether the node keeps tensors for backward (only those can be freed and then refuse a second pass).
  virtual bool has_saved() const { return false; }
  virtual bool is_accumulator() const { return false; }

  std::vector<Edge> next_edges;
  uint64_t sequence_nr = 0;
  bool released = false;
};

/// Adds the incoming gradient into a leaf's .grad (the leaf is kept alive by the graph).
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }
  bool is_accumulator() const override { return true; }
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

/// What a backward formula sees: the saved tensors, unpacked, and which inputs need a gradient.
struct BackwardContext {
  std::vector<Tensor> saved;
  std::vector<bool> needs_input_grad;
  bool needs(size_t i) const { return i < needs_input_grad.size() && needs_input_grad[i]; }
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const BackwardContext& ctx)>;

/// A node whose backward is a formula (usually a lambda written beside the forward).
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, std::vector<Tensor> saved, BackwardFn fn);
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return name_; }
  void release() override;
  bool has_saved() const override { return !saved_.empty(); }

 private:
  std::string name_;
  std::vector<SavedTensor> saved_;
  BackwardFn fn_;
};

/// The node through which gradients reach `t`: its grad_fn, or its leaf accumulator
/// (created on first use) when it requires grad; null otherwise.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

/// True when grad mode is on and any input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

/// Records `output = op(inputs)` on the tape when any input requires grad: the
/// node gets one edge per input (undefined inputs get none) and keeps `saved`.
/// The formula must return one gradient per input, shaped like that input.
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            std::vector<Tensor> saved, BackwardFn fn);

}  // namespace zae::autograd
