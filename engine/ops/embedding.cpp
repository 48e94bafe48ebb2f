// embedding: rows of weight (V, D) picked by integer indices of any shape; the
// output has shape indices.shape + [D]. Backward is a dense (V, D) gradient; entries
// equal to padding_idx contribute no gradient. Indices are bounds-checked first (on
// CUDA on the device, one read-back: engine/ops/index_check.h).
// CPU backward: row by row in index order (deterministic for any thread count). CUDA
// backward: with zae::deterministic() on, the indices are radix-sorted and each row's
// gradient is summed in index order (the CPU's bits); otherwise atomicAdd.
#include "engine/autograd/node.h"
#include "engine/determinism.h"
#include "engine/ops/factory.h"
#include "engine/ops/index_check.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/index.h"
#endif

namespace zae {

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  ZAE_CHECK(indices.defined() && weight.defined(), "embedding: undefined ", indices.defined() ? "weight" : "indices",
            " tensor");
  ZAE_CHECK(weight.dim() == 2, "embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape ",
            shape_str(weight.shape()));
  ZAE_CHECK(indices.dtype() == DType::int64 || indices.dtype() == DType::int32, "embedding: indices dtype ",
            indices.dtype(), " is not supported (expected int64 or int32)");
  ZAE_CHECK(indices.device() == weight.device(), "embedding: indices are on ", indices.device(), " but weight is on ",
            weight.device());
  ZAE_CHECK(indices.dim() < kMaxDims, "embedding: indices of shape ", shape_str(indices.shape()),
            " leave no room for the embedding dim (max ", kMaxDims, " dims)");
  const int64_t vocab = weight.shape()[0], width = weight.shape()[1];
  int64_t pad = -1;
  if (padding_idx) {
    ZAE_CHECK(*padding_idx >= -vocab && *padding_idx < vocab, "embedding: padding_idx ", *padding_idx,
              " is out of range for weight of shape ", shape_str(weight.shape()), " (expected in [", -vocab, ", ",
              vocab - 1, "])");
    pad = *padding_idx < 0 ? *padding_idx + vocab : *padding_idx;
  }
#ifdef ZAE_WITH_CUDA
  const bool has_kernels = weight.device().is_cpu() || weight.device().is_cuda();
#else
  const bool has_kernels = weight.device().is_cpu();
#endif
  ZAE_CHECK(has_kernels, "embedding: not implemented for device ", weight.device(), " (dtype ", weight.dtype(),
            ") in this build");

  Tensor idx = indices.detach().contiguous();
  const int64_t n = idx.numel();
  const int64_t bad = detail::scan_indices("embedding", idx, vocab).first_invalid;
  ZAE_CHECK(bad < 0, "embedding: index ", detail::index_value_at(idx, bad), " at flat position ", bad,
            " is out of range for ", vocab, " embeddings (weight shape ", shape_str(weight.shape()), ")");

  Tensor w = weight.detach().contiguous();
  Shape out_shape = indices.shape();
  out_shape.push_back(width);
  Tensor out = empty(out_shape, {.dtype = weight.dtype(), .device = weight.device()});
  if (weight.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    const int dev = weight.device().index;
    cuda::DeviceGuard guard(dev);
    dispatch_index(idx.dtype(), "embedding", [&](auto itag) {
      using I = typename decltype(itag)::type;
      kernels::cuda::index_select<I>(out.raw_data(), w.raw_data(), idx.data<I>(), 1, vocab, n, width,
                                     w.element_size(), cuda::current_stream(dev));
    });
#else
    ZAE_FAIL("embedding: CUDA tensor in a build without the CUDA backend");
#endif
  } else {
    dispatch_all(weight.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_index(idx.dtype(), "embedding", [&](auto itag) {
        using I = typename decltype(itag)::type;
        kernels::cpu::index_select<T, I>(out.data<T>(), w.data<T>(), idx.data<I>(), 1, vocab, n, width);
      });
    });
  }

  autograd::record("EmbeddingBackward", {weight}, out, {idx},
                   [vocab, width, pad](const Tensor& g, const autograd::BackwardContext& ctx) {
                     const Tensor& ids = ctx.saved[0];
                     Tensor gc = g.contiguous();  // (n, D)
                     Tensor d_weight = zeros({vocab, width}, {.dtype = gc.dtype(), .device = gc.device()});
                     dispatch_floating(gc.dtype(), "embedding backward", [&](auto tag) {
                       using T = typename decltype(tag)::type;
                       dispatch_index(ids.dtype(), "embedding backward", [&](auto itag) {
                         using I = typename decltype(itag)::type;
                         if (gc.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
                           const bool det = deterministic();
                           const int dev = gc.device().index;
                           cuda::DeviceGuard guard(dev);
                           Tensor ws = Tensor::empty(
                               {static_cast<int64_t>(
                                   kernels::cuda::index_add_workspace_bytes<T>(ids.numel(), d_weight.numel(), det))},
                               {.dtype = DType::uint8, .device = gc.device()});
                           kernels::cuda::index_add<T, I>(d_weight.data<T>(), gc.data<T>(), ids.data<I>(), 1, vocab,
                                                          ids.numel(), width, pad, det, ws.raw_data(),
                                                          cuda::current_stream(dev));
#else
                           ZAE_FAIL("embedding backward: CUDA tensor in a build without the CUDA backend");
#endif
                         } else {
                           kernels::cpu::index_add<T, I>(d_weight.data<T>(), gc.data<T>(), ids.data<I>(), 1, vocab,
                                                         ids.numel(), width, pad);
                         }
                       });
                     });
                     return std::vector<Tensor>{d_weight};
                   });
  return out;
}

}  // namespace zae
