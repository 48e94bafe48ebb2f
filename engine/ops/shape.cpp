// Joining (cat, stack) and splitting (split, chunk) tensors, torch semantics.
// cat copies every input into its slice of one new tensor (any device copy_into
// supports) and hands each input its slice of the gradient; stack = unsqueeze + cat.
// split and chunk return narrow() views, which record their own backward.
#include "engine/ops/shape.h"

#include <algorithm>

#include "engine/autograd/node.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"

namespace zae {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  ZAE_CHECK(!tensors.empty(), "cat: expects a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) ZAE_CHECK(tensors[i].defined(), "cat: tensor ", i, " is undefined");
  const Tensor& first = tensors[0];
  for (size_t i = 0; i < tensors.size(); ++i)
    ZAE_CHECK(tensors[i].dim() > 0, "cat: tensor ", i, " is zero-dimensional (shape ", shape_str(tensors[i].shape()),
              ") and cannot be concatenated");
  dim = first.wrap_dim(dim, "cat");
  Shape out_shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ZAE_CHECK(t.dtype() == first.dtype(), "cat: tensor ", i, " has dtype ", t.dtype(), " but tensor 0 has dtype ",
              first.dtype());
    ZAE_CHECK(t.device() == first.device(), "cat: tensor ", i, " is on ", t.device(), " but tensor 0 is on ",
              first.device());
    ZAE_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", shape_str(t.shape()), " (", t.dim(),
              " dims) but tensor 0 has shape ", shape_str(first.shape()), " (", first.dim(), " dims)");
    for (int64_t d = 0; d < first.dim(); ++d)
      ZAE_CHECK(d == dim || t.shape()[d] == first.shape()[d], "cat: tensor ", i, " has shape ", shape_str(t.shape()),
                " but tensor 0 has shape ", shape_str(first.shape()), "; sizes must match except in dim ", dim,
                " (they differ in dim ", d, ")");
    total += t.shape()[dim];
  }
  out_shape[dim] = total;

  Tensor out = empty(out_shape, {.dtype = first.dtype(), .device = first.device()});
  std::vector<int64_t> starts, lengths;
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    const int64_t n = t.shape()[dim];
    if (n > 0) copy_into(out.narrow(dim, start, n), t);
    starts.push_back(start);
    lengths.push_back(n);
    start += n;
  }
  autograd::record("CatBackward", tensors, out, {}, [dim, starts, lengths](const Tensor& g, const auto& ctx) {
    std::vector<Tensor> grads(starts.size());
    for (size_t i = 0; i < starts.size(); ++i)
      if (ctx.needs(i)) grads[i] = g.narrow(dim, starts[i], lengths[i]);
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  ZAE_CHECK(!tensors.empty(), "stack: expects a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    ZAE_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    ZAE_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ",
              shape_str(tensors[i].shape()), " but tensor 0 has shape ", shape_str(tensors[0].shape()),
              "; all tensors must have the same shape");
  }
  const int64_t rank = tensors[0].dim() + 1;
  ZAE_CHECK(dim >= -rank && dim < rank, "stack: dim ", dim, " is out of range for stacking tensors of shape ",
            shape_str(tensors[0].shape()), " (expected in [", -rank, ", ", rank - 1, "])");
  if (dim < 0) dim += rank;
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (const Tensor& t : tensors) expanded.push_back(t.unsqueeze(dim));
  return cat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  ZAE_CHECK(x.defined(), "split: undefined input tensor");
  dim = x.wrap_dim(dim, "split");
  ZAE_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int64_t n = x.shape()[dim];
  ZAE_CHECK(split_size >= 0, "split: split_size must be non-negative, got ", split_size);
  ZAE_CHECK(split_size > 0 || n == 0, "split: split_size can be 0 only when dim ", dim, " has size 0, but it has size ",
            n, " (shape ", shape_str(x.shape()), ")");
  std::vector<Tensor> pieces;
  if (split_size == 0) {
    pieces.push_back(x.narrow(dim, 0, 0));
    return pieces;
  }
  const int64_t count = std::max<int64_t>((n + split_size - 1) / split_size, 1);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t start = i * split_size;
    pieces.push_back(x.narrow(dim, start, std::min(split_size, n - start)));
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  ZAE_CHECK(x.defined(), "split: undefined input tensor");
  dim = x.wrap_dim(dim, "split");
  ZAE_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int64_t n = x.shape()[dim];
  int64_t sum = 0;
  for (int64_t s : sizes) {
    ZAE_CHECK(s >= 0, "split: sizes ", sizes, " contain the negative size ", s);
    sum += s;
  }
  ZAE_CHECK(sum == n, "split: sizes ", sizes, " sum to ", sum, " but dim ", dim, " of the input of shape ",
            shape_str(x.shape()), " has size ", n);
  std::vector<Tensor> pieces;
  pieces.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  ZAE_CHECK(x.defined(), "chunk: undefined input tensor");
  ZAE_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  dim = x.wrap_dim(dim, "chunk");
  ZAE_CHECK(x.dim() > 0, "chunk: cannot chunk a zero-dimensional tensor");
  const int64_t n = x.shape()[dim];
  const int64_t size = (n + chunks - 1) / chunks;
  if (n == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);
  return split(x, size, dim);
}

}  // namespace zae
