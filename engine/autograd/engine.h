// The backward pass: a topological reverse sweep over the recorded graph.
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace zae::autograd {

/// Accumulates d(sum_i <roots_i, grads_i>)/d(leaf) into every reachable leaf's .grad.
/// grads[i] may be undefined only for a one-element root (then it is 1).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads = {},
              bool retain_graph = false);

/// Gradients of `outputs` with respect to `inputs` (like torch.autograd.grad); .grad is
/// not touched. An input the outputs do not depend on is an error unless allow_unused
/// (then its entry is undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool allow_unused = false);

}  // namespace zae::autograd
