// Backward pass: collect the nodes reachable from the roots, count how many
// edges enter each, then run nodes in an order where every node runs after all
// nodes that feed it a gradient (Kahn's algorithm, newest node first).
#include "engine/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"

namespace zae::autograd {

namespace {

struct ByNewest {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr < b->sequence_nr; }
};

struct Pass {
  // Captured inputs (autograd::grad): node -> slot in the result.
  std::unordered_map<Node*, size_t> capture;
  std::vector<Tensor> captured;
  bool accumulate = true;  // false for autograd::grad: leaves' .grad stay untouched
  bool retain_graph = false;
};

Tensor root_gradient(const Tensor& root, const Tensor& given, size_t i) {
  if (given.defined()) {
    ZAE_CHECK(given.shape() == root.shape(), "backward: gradient ", i, " has shape ", shape_str(given.shape()),
              " but its output has shape ", shape_str(root.shape()));
    ZAE_CHECK(given.device() == root.device(), "backward: gradient ", i, " is on ", given.device(),
              " but its output is on ", root.device());
    return given.dtype() == root.dtype() ? given : given.to(root.dtype());
  }
  ZAE_CHECK(root.numel() == 1, "backward: output ", i, " has shape ", shape_str(root.shape()),
            "; a gradient can be implied only for one-element outputs (pass a gradient tensor)");
  return ones(root.shape(), {.dtype = root.dtype(), .device = root.device()});
}

void run(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, Pass& pass) {
  ZAE_CHECK(grads.empty() || grads.size() == roots.size(), "backward: got ", grads.size(), " gradients for ",
            roots.size(), " outputs");
  NoGradGuard no_grad;  // backward formulas do not record
  autocast::Suspend no_autocast;  // and run in the dtypes their forward saved

  std::unordered_map<Node*, Tensor> buffer;  // summed incoming gradient per node
  std::vector<std::shared_ptr<Node>> root_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    ZAE_CHECK(r.defined(), "backward: output ", i, " is an undefined tensor");
    std::shared_ptr<Node> fn = gradient_edge(r);
    ZAE_CHECK(fn != nullptr, "backward: output ", i, " (shape ", shape_str(r.shape()),
              ") does not require grad and has no grad_fn");
    Tensor g = root_gradient(r, i < grads.size() ? grads[i] : Tensor(), i);
    Tensor& slot = buffer[fn.get()];
    slot = slot.defined() ? add(slot, g) : g;
    root_nodes.push_back(std::move(fn));
  }

  // Dependencies: how many edges enter each reachable node.
  std::unordered_map<Node*, int> deps;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (auto& n : root_nodes)
    if (seen.insert(n.get()).second) stack.push_back(n.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.fn) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  // autograd::grad runs only the nodes through which a gradient reaches a requested
  // input: those with a captured node strictly below them.
  std::unordered_set<Node*> leads_to_capture;
  if (!pass.capture.empty()) {
    std::unordered_set<Node*> done;
    std::vector<std::pair<Node*, size_t>> dfs;
    for (auto& n : root_nodes) dfs.emplace_back(n.get(), 0);
    while (!dfs.empty()) {
      auto& [n, i] = dfs.back();
      if (i == 0 && done.count(n)) {
        dfs.pop_back();
        continue;
      }
      if (i < n->next_edges.size()) {
        Node* child = n->next_edges[i++].fn.get();
        if (child && !done.count(child)) dfs.emplace_back(child, 0);
        continue;
      }
      for (const Edge& e : n->next_edges)
        if (e.fn && (pass.capture.count(e.fn.get()) || leads_to_capture.count(e.fn.get()))) leads_to_capture.insert(n);
      done.insert(n);
      dfs.pop_back();
    }
  }

  // A root that another root leads to (backward({a, b}) with b computed from a) waits for
  // its dependencies like any node: it is queued when its count reaches zero, once.
  std::priority_queue<Node*, std::vector<Node*>, ByNewest> ready;
  std::unordered_set<Node*> queued;
  for (auto& n : root_nodes)
    if (deps[n.get()] == 0 && queued.insert(n.get()).second) ready.push(n.get());

  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    Tensor grad_out;
    if (auto it = buffer.find(node); it != buffer.end()) {
      grad_out = std::move(it->second);
      buffer.erase(it);
    }
    if (auto c = pass.capture.find(node); c != pass.capture.end()) pass.captured[c->second] = grad_out;

    std::vector<Tensor> grads_in;
    bool execute = grad_out.defined() &&
                   (pass.capture.empty() ? !(node->is_accumulator() && !pass.accumulate) : leads_to_capture.count(node));
    if (execute) {
      ZAE_CHECK(!node->released, "trying to backward through the graph a second time (", node->name(),
                " has already freed its saved tensors); call backward(..., retain_graph=true) the first time");
      grads_in = node->apply(grad_out);
      if (!pass.retain_graph && node->has_saved()) {
        node->release();
        node->released = true;
      }
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      Node* next = node->next_edges[i].fn.get();
      if (!next) continue;
      if (i < grads_in.size() && grads_in[i].defined()) {
        Tensor& slot = buffer[next];
        slot = slot.defined() ? add(slot, grads_in[i]) : grads_in[i];
      }
      if (--deps[next] == 0 && queued.insert(next).second) ready.push(next);
    }
  }
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  Pass pass;
  pass.retain_graph = retain_graph;
  run(roots, grads, pass);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool allow_unused) {
  Pass pass;
  pass.retain_graph = retain_graph;
  pass.accumulate = false;
  pass.captured.resize(inputs.size());
  std::vector<std::shared_ptr<Node>> keep;  // accumulators created here stay alive for the pass
  for (size_t i = 0; i < inputs.size(); ++i) {
    ZAE_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "grad: input ", i,
              " does not require grad, so no gradient can be computed for it");
    std::shared_ptr<Node> n = gradient_edge(inputs[i]);
    ZAE_CHECK(!pass.capture.count(n.get()), "grad: input ", i, " is listed twice");
    pass.capture[n.get()] = i;
    keep.push_back(std::move(n));
  }
  run(outputs, grad_outputs, pass);
  for (size_t i = 0; i < inputs.size(); ++i) {
    ZAE_CHECK(pass.captured[i].defined() || allow_unused, "grad: input ", i, " (shape ",
              shape_str(inputs[i].shape()), ") was not used to compute the outputs; pass allow_unused=true");
  }
  return pass.captured;
}

}  // namespace zae::autograd
