// Indexing ops: gather, index_select, scatter_add (torch semantics), each with its
// backward, on the CPU and on CUDA. Indices are int64 or int32 and are bounds-checked
// before any kernel runs (the error names the bad value, the dim and its size);
// negative indices are out of bounds, as in torch. Index tensors never receive
// gradients. On CUDA the check runs on the device and is read back once per forward
// call (engine/ops/index_check.h); accumulation (scatter_add, and the backward of
// gather and index_select) is bit-reproducible when zae::deterministic() is on and uses
// atomicAdd otherwise (engine/determinism.h).
#include "engine/ops/index.h"

#include <string>

#include "engine/autograd/node.h"
#include "engine/determinism.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"
#include "engine/ops/index_check.h"
#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/index.h"
#endif

namespace zae {

namespace {

void require_kernels(const char* op, const Tensor& x) {
#ifdef ZAE_WITH_CUDA
  const bool ok = x.device().is_cpu() || x.device().is_cuda();
#else
  const bool ok = x.device().is_cpu();
#endif
  ZAE_CHECK(ok, op, ": not implemented for device ", x.device(), " (dtype ", x.dtype(), ") in this build");
}

#ifdef ZAE_WITH_CUDA
cudaStream_t stream_of(const Tensor& t) { return cuda::current_stream(t.device().index); }

// Device workspace of `bytes` bytes on t's device (the caching allocator serves it).
Tensor workspace_for(const Tensor& t, size_t bytes) {
  return Tensor::empty({static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = t.device()});
}
#endif

void check_same_device(const char* op, const Tensor& x, const Tensor& other, const char* what) {
  ZAE_CHECK(other.device() == x.device(), op, ": ", what, " is on ", other.device(), " but the input is on ",
            x.device());
}

// A contiguous copy (or view) of an index tensor, cut from any graph; rejects non-index dtypes.
Tensor contiguous_index(const char* op, const Tensor& index) {
  ZAE_CHECK(index.dtype() == DType::int64 || index.dtype() == DType::int32, op, ": index dtype ", index.dtype(),
            " is not supported (expected int64 or int32)");
  return index.detach().contiguous();
}

// Fails naming `op` when a value of idx (contiguous) lies outside [0, size) of x's dim `dim`.
void check_index_range(const char* op, const Tensor& idx, int64_t size, int64_t dim, const Shape& x_shape) {
  const int64_t pos = detail::scan_indices(op, idx, size).first_invalid;
  ZAE_CHECK(pos < 0, op, ": index ", detail::index_value_at(idx, pos), " is out of bounds for dim ", dim,
            " with size ", size, " (input shape ", shape_str(x_shape), ", at flat index position ", pos, ")");
}

// Size of dim `dim` of x, treating a 0-dim tensor as one element.
int64_t dim_size(const Tensor& x, int64_t dim) { return x.dim() == 0 ? 1 : x.shape()[dim]; }
int64_t dim_stride(const Tensor& x, int64_t dim) { return x.dim() == 0 ? 0 : x.strides()[dim]; }

// out (contiguous, x's shape) += src at idx along dim; idx validated, contiguous; no autograd.
void scatter_add_into(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  if (idx.numel() == 0) return;
  // Iterate over the index shape with the scatter dim innermost, so each line of
  // outputs is owned by one thread and summed in index order.
  kernels::StridedIter<3> it;
  it.ndim = static_cast<int>(idx.dim());
  int k = 0;
  for (int64_t pass = 0; pass < 2; ++pass) {
    for (int64_t d = 0; d < idx.dim(); ++d) {
      if ((d == dim) != (pass == 1)) continue;
      it.sizes[k] = idx.shape()[d];
      it.strides[0][k] = d == dim ? 0 : out.strides()[d];
      it.strides[1][k] = src.strides()[d];
      it.strides[2][k] = idx.strides()[d];
      ++k;
    }
  }
  if (out.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    ZAE_CHECK(out.is_contiguous(), "scatter_add: internal error: CUDA accumulation into a strided output");
    const bool det = deterministic();
    cuda::DeviceGuard guard(out.device().index);
    dispatch_numeric(out.dtype(), "scatter_add", [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_index(idx.dtype(), "scatter_add", [&](auto itag) {
        using I = typename decltype(itag)::type;
        Tensor ws = workspace_for(out, kernels::cuda::scatter_add_workspace_bytes<T>(it.numel(), out.numel(), det));
        kernels::cuda::scatter_add<T, I>(it, static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
                                         idx.data<I>(), dim_stride(out, dim), dim_size(out, dim), out.numel(), det,
                                         ws.raw_data(), stream_of(out));
      });
    });
#else
    ZAE_FAIL("CUDA tensor in a build without the CUDA backend");
#endif
    return;
  }
  dispatch_numeric(out.dtype(), "scatter_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_index(idx.dtype(), "scatter_add", [&](auto itag) {
      using I = typename decltype(itag)::type;
      kernels::cpu::scatter_add<T, I>(it, static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
                                      idx.data<I>(), dim_stride(out, dim));
    });
  });
}

// out (outer, rows, inner) += src (outer, n, inner) at rows idx; all contiguous; no autograd.
void index_add_into(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  const Shape& shape = out.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= shape[d];
  if (out.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    const bool det = deterministic();
    cuda::DeviceGuard guard(out.device().index);
    dispatch_floating(out.dtype(), "index_select backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_index(idx.dtype(), "index_select backward", [&](auto itag) {
        using I = typename decltype(itag)::type;
        Tensor ws = workspace_for(out, kernels::cuda::index_add_workspace_bytes<T>(idx.numel(), out.numel(), det));
        kernels::cuda::index_add<T, I>(static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
                                       idx.data<I>(), outer, shape[dim], idx.numel(), inner, -1, det, ws.raw_data(),
                                       stream_of(out));
      });
    });
#else
    ZAE_FAIL("CUDA tensor in a build without the CUDA backend");
#endif
    return;
  }
  dispatch_numeric(out.dtype(), "index_select backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_index(idx.dtype(), "index_select backward", [&](auto itag) {
      using I = typename decltype(itag)::type;
      kernels::cpu::index_add<T, I>(static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
                                    idx.data<I>(), outer, shape[dim], idx.numel(), inner, -1);
    });
  });
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  ZAE_CHECK(x.defined() && index.defined(), "gather: undefined ", x.defined() ? "index" : "input", " tensor");
  dim = x.wrap_dim(dim, "gather");
  ZAE_CHECK(index.dim() == x.dim(), "gather: index of shape ", shape_str(index.shape()), " has ", index.dim(),
            " dims but the input of shape ", shape_str(x.shape()), " has ", x.dim());
  for (int64_t d = 0; d < x.dim(); ++d)
    ZAE_CHECK(d == dim || index.shape()[d] <= x.shape()[d], "gather: index of shape ", shape_str(index.shape()),
              " is larger than the input of shape ", shape_str(x.shape()), " at dim ", d, " (only dim ", dim,
              " may differ)");
  check_same_device("gather", x, index, "index");
  require_kernels("gather", x);
  Tensor idx = contiguous_index("gather", index);
  check_index_range("gather", idx, dim_size(x, dim), dim, x.shape());

  Tensor out = empty(index.shape(), {.dtype = x.dtype(), .device = x.device()});
  kernels::StridedIter<3> it;
  it.ndim = static_cast<int>(idx.dim());
  for (int64_t d = 0; d < idx.dim(); ++d) {
    it.sizes[d] = idx.shape()[d];
    it.strides[0][d] = out.strides()[d];
    it.strides[1][d] = d == dim ? 0 : x.strides()[d];
    it.strides[2][d] = idx.strides()[d];
  }
  if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    cuda::DeviceGuard guard(x.device().index);
    dispatch_index(idx.dtype(), "gather", [&](auto itag) {
      using I = typename decltype(itag)::type;
      kernels::cuda::gather<I>(it, out.raw_data(), x.raw_data(), idx.data<I>(), dim_stride(x, dim), x.element_size(),
                               stream_of(x));
    });
#else
    ZAE_FAIL("CUDA tensor in a build without the CUDA backend");
#endif
  } else {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_index(idx.dtype(), "gather", [&](auto itag) {
        using I = typename decltype(itag)::type;
        kernels::cpu::gather<T, I>(it, static_cast<T*>(out.raw_data()), static_cast<const T*>(x.raw_data()),
                                   idx.data<I>(), dim_stride(x, dim));
      });
    });
  }

  Shape x_shape = x.shape();
  autograd::record("GatherBackward", {x}, out, {idx}, [x_shape, dim](const Tensor& g, const auto& ctx) {
    Tensor gx = zeros(x_shape, {.dtype = g.dtype(), .device = g.device()});
    scatter_add_into(gx, dim, ctx.saved[0], g);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  ZAE_CHECK(x.defined() && index.defined(), "index_select: undefined ", x.defined() ? "index" : "input", " tensor");
  ZAE_CHECK(x.dim() >= 1, "index_select: expects an input with at least 1 dim, got shape ", shape_str(x.shape()));
  dim = x.wrap_dim(dim, "index_select");
  ZAE_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got shape ", shape_str(index.shape()));
  check_same_device("index_select", x, index, "index");
  require_kernels("index_select", x);
  Tensor idx = contiguous_index("index_select", index);
  const int64_t rows = x.shape()[dim], n = idx.numel();
  check_index_range("index_select", idx, rows, dim, x.shape());

  Tensor xc = x.detach().contiguous();
  Shape out_shape = x.shape();
  out_shape[dim] = n;
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out_shape[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= out_shape[d];
  if (x.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    cuda::DeviceGuard guard(x.device().index);
    dispatch_index(idx.dtype(), "index_select", [&](auto itag) {
      using I = typename decltype(itag)::type;
      kernels::cuda::index_select<I>(out.raw_data(), xc.raw_data(), idx.data<I>(), outer, rows, n, inner,
                                     x.element_size(), stream_of(x));
    });
#else
    ZAE_FAIL("CUDA tensor in a build without the CUDA backend");
#endif
  } else {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_index(idx.dtype(), "index_select", [&](auto itag) {
        using I = typename decltype(itag)::type;
        kernels::cpu::index_select<T, I>(static_cast<T*>(out.raw_data()), static_cast<const T*>(xc.raw_data()),
                                         idx.data<I>(), outer, rows, n, inner);
      });
    });
  }

  Shape x_shape = x.shape();
  autograd::record("IndexSelectBackward", {x}, out, {idx}, [x_shape, dim](const Tensor& g, const auto& ctx) {
    Tensor gx = zeros(x_shape, {.dtype = g.dtype(), .device = g.device()});
    index_add_into(gx, dim, ctx.saved[0], g.contiguous());
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  ZAE_CHECK(x.defined() && index.defined() && src.defined(), "scatter_add: undefined ",
            !x.defined()       ? "input"
            : !index.defined() ? "index"
                               : "src",
            " tensor");
  dim = x.wrap_dim(dim, "scatter_add");
  ZAE_CHECK(index.dim() == x.dim() && src.dim() == x.dim(), "scatter_add: input ", shape_str(x.shape()), ", index ",
            shape_str(index.shape()), " and src ", shape_str(src.shape()), " must have the same number of dims");
  ZAE_CHECK(src.dtype() == x.dtype(), "scatter_add: src dtype ", src.dtype(), " differs from the input dtype ",
            x.dtype());
  for (int64_t d = 0; d < x.dim(); ++d) {
    ZAE_CHECK(index.shape()[d] <= src.shape()[d], "scatter_add: index of shape ", shape_str(index.shape()),
              " is larger than src of shape ", shape_str(src.shape()), " at dim ", d);
    ZAE_CHECK(d == dim || index.shape()[d] <= x.shape()[d], "scatter_add: index of shape ", shape_str(index.shape()),
              " is larger than the input of shape ", shape_str(x.shape()), " at dim ", d, " (only dim ", dim,
              " may differ)");
  }
  check_same_device("scatter_add", x, index, "index");
  check_same_device("scatter_add", x, src, "src");
  require_kernels("scatter_add", x);
  Tensor idx = contiguous_index("scatter_add", index);
  check_index_range("scatter_add", idx, dim_size(x, dim), dim, x.shape());

  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  copy_into(out, x);
  scatter_add_into(out, dim, idx, src);

  Shape src_shape = src.shape(), index_shape = index.shape();
  autograd::record("ScatterAddBackward", {x, src}, out, {idx},
                   [dim, src_shape, index_shape](const Tensor& g, const auto& ctx) {
                     Tensor gx = ctx.needs(0) ? g : Tensor();
                     Tensor gs;
                     if (ctx.needs(1)) {
                       Tensor picked = gather(g, dim, ctx.saved[0]);  // index shape
                       if (src_shape == index_shape) {
                         gs = picked;
                       } else {  // src positions the index does not reach get no gradient
                         gs = zeros(src_shape, {.dtype = g.dtype(), .device = g.device()});
                         Tensor part = gs;
                         for (size_t d = 0; d < index_shape.size(); ++d)
                           part = part.narrow(static_cast<int64_t>(d), 0, index_shape[d]);
                         copy_into(part, picked);
                       }
                     }
                     return std::vector<Tensor>{gx, gs};
                   });
  return out;
}

}  // namespace zae
