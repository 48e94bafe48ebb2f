#include "dist/ring_all_reduce.h"

#include "dist/reduce_kernels.h"
#include "engine/error.h"
#include "engine/ops/copy.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"

namespace zae::dist {
namespace detail {

std::vector<int64_t> ring_chunk_bounds(int64_t numel, int n) {
  ZAE_CHECK(n >= 1 && numel >= 0, "ring_chunk_bounds: need n >= 1 and numel >= 0, got n = ", n, ", numel = ", numel);
  std::vector<int64_t> bounds(static_cast<size_t>(n) + 1, 0);
  const int64_t base = numel / n;
  const int64_t rem = numel % n;
  for (int i = 0; i < n; ++i) bounds[i + 1] = bounds[i] + base + (i < rem ? 1 : 0);
  return bounds;
}

namespace {

int wrap(int i, int n) { return ((i % n) + n) % n; }

bool is_half(DType d) { return d == DType::bfloat16 || d == DType::float16; }

// A 1-D view of `len` elements of contiguous `t`'s data, from element `begin`. Built from
// the storage directly so that no autograd node is recorded.
Tensor flat_view(const Tensor& t, int64_t begin, int64_t len) {
  return Tensor::make_view(t.storage(), {len}, {1}, t.storage_offset() + begin, t.dtype());
}

Tensor converted(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), {.dtype = dtype, .device = t.device()});
  copy_into(out, t);
  return out;
}

// out = op(a, b) elementwise over equal-length 1-D views (out may alias a or b).
void reduce_into(const Tensor& out, const Tensor& a, const Tensor& b, ReduceOp op, const char* name) {
  if (out.numel() == 0) return;
  if (out.device().is_cpu() && is_native_reduce_dtype(out.dtype())) {
    cpu_reduce_fn(out.dtype(), op, name)(out.raw_data(), a.raw_data(), b.raw_data(), static_cast<size_t>(out.numel()));
    return;
  }
  const BinaryOp bop =
      op == ReduceOp::min ? BinaryOp::minimum : op == ReduceOp::max ? BinaryOp::maximum : BinaryOp::add;
  binary_into(bop, out, a, b, 1.0, name);
}

void divide_by(const Tensor& t, int n, const char* name) {
  if (t.numel() == 0 || n == 1) return;
  if (t.device().is_cpu() && is_native_reduce_dtype(t.dtype())) {
    cpu_divide_inplace(t.dtype(), t.raw_data(), static_cast<size_t>(t.numel()), n, name);
    return;
  }
  binary_into(BinaryOp::div, t, t, scalar_tensor(n, {.dtype = t.dtype(), .device = t.device()}), 1.0, name);
}

void check_ring_input(const char* name, const Tensor& t, ReduceOp op, int rank, int size) {
  ZAE_CHECK(size >= 1 && rank >= 0 && rank < size, name, ": rank ", rank, " is not in a group of size ", size);
  ZAE_CHECK(t.defined(), name, ": the tensor is undefined");
  ZAE_CHECK(t.is_contiguous(), name, ": the tensor must be contiguous, got shape ", shape_str(t.shape()), " strides ",
            shape_str(t.strides()), ", dtype ", t.dtype(), ", device ", t.device(), " (call .contiguous() first)");
  ZAE_CHECK(t.dtype() != DType::bool_, name, ": dtype bool cannot be reduced (shape ", shape_str(t.shape()),
            ", device ", t.device(), ")");
  ZAE_CHECK(op != ReduceOp::avg || is_floating(t.dtype()), name, ": ReduceOp::avg needs a floating dtype, got ",
            t.dtype(), " (shape ", shape_str(t.shape()), ", device ", t.device(),
            "); integer averages would round: reduce with sum and divide yourself");
}

}  // namespace

void ring_all_reduce(const SendRecvFn& send_recv, int rank, int size, Tensor& t, ReduceOp op) {
  const char* name = "ring_all_reduce";
  check_ring_input(name, t, op, rank, size);
  if (t.numel() == 0) return;
  if (is_half(t.dtype())) {  // reduce in float32, round once
    Tensor wide = converted(t, DType::float32);
    ring_all_reduce(send_recv, rank, size, wide, op);
    copy_into(t, wide);
    t.storage()->bump_version();
    return;
  }
  if (size > 1) {
    const std::vector<int64_t> bounds = ring_chunk_bounds(t.numel(), size);
    auto chunk = [&](int i) { return flat_view(t, bounds[i], bounds[i + 1] - bounds[i]); };
    const int next = wrap(rank + 1, size);
    const int prev = wrap(rank - 1, size);
    // Chunk 0 is the largest (the first numel % size chunks hold one extra element).
    Tensor scratch = Tensor::empty({bounds[1]}, {.dtype = t.dtype(), .device = t.device()});

    // Phase 1, reduce-scatter: chunk (rank - s) leaves, chunk (rank - s - 1) arrives and is reduced.
    for (int s = 0; s < size - 1; ++s) {
      const Tensor out = chunk(wrap(rank - s, size));
      const Tensor mine = chunk(wrap(rank - s - 1, size));
      Tensor in = flat_view(scratch, 0, mine.numel());
      send_recv(out, next, in, prev);
      reduce_into(mine, mine, in, op, name);
    }
    // Rank r now owns chunk (r + 1) fully reduced. Phase 2, all-gather: pass finished chunks on.
    for (int s = 0; s < size - 1; ++s) {
      const Tensor out = chunk(wrap(rank - s + 1, size));
      Tensor in = chunk(wrap(rank - s, size));
      send_recv(out, next, in, prev);
    }
  }
  if (op == ReduceOp::avg) divide_by(t, size, name);
  t.storage()->bump_version();
}

Tensor ring_reduce_scatter(const SendRecvFn& send_recv, int rank, int size, const Tensor& in, ReduceOp op) {
  const char* name = "ring_reduce_scatter";
  check_ring_input(name, in, op, rank, size);
  ZAE_CHECK(in.dim() >= 1 && in.size(0) % size == 0, name, ": dim 0 of the input must be divisible by the group size ",
            size, ", got shape ", shape_str(in.shape()), ", dtype ", in.dtype(), ", device ", in.device());
  Shape out_shape = in.shape();
  out_shape[0] /= size;
  if (is_half(in.dtype())) {  // reduce in float32, round once
    const Tensor wide = ring_reduce_scatter(send_recv, rank, size, converted(in, DType::float32), op);
    return converted(wide, in.dtype());
  }
  const int64_t seg = in.numel() / size;  // elements per rank's share
  if (size == 1 || seg == 0) {
    Tensor out = Tensor::empty(out_shape, {.dtype = in.dtype(), .device = in.device()});
    if (seg > 0) copy_into(out, in);
    return out;
  }
  const int next = wrap(rank + 1, size);
  const int prev = wrap(rank - 1, size);
  auto share = [&](int i) { return flat_view(in, i * seg, seg); };
  // Two buffers alternate: the partial share that goes out this step, and the one coming in.
  // Shares are shifted by one against ring_all_reduce so that rank r ends owning share r.
  Tensor bufs[2] = {Tensor::empty({seg}, {.dtype = in.dtype(), .device = in.device()}),
                    Tensor::empty({seg}, {.dtype = in.dtype(), .device = in.device()})};
  int cur = 0;
  for (int s = 0; s < size - 1; ++s) {
    const Tensor out = s == 0 ? share(wrap(rank - s - 1, size)) : bufs[cur];
    Tensor& incoming = bufs[1 - cur];
    send_recv(out, next, incoming, prev);
    reduce_into(incoming, incoming, share(wrap(rank - s - 2, size)), op, name);
    cur = 1 - cur;
  }
  Tensor result = Tensor::make_view(bufs[cur].storage(), out_shape, contiguous_strides(out_shape), 0, in.dtype());
  if (op == ReduceOp::avg) divide_by(result, size, name);
  return result;
}

}  // namespace detail

void ring_all_reduce(ProcessGroup& pg, Tensor& t, ReduceOp op) {
  const detail::SendRecvFn send_recv = [&pg](const Tensor& out, int dst, Tensor& in, int src) {
    pg.send_recv(out, dst, in, src, kRingTag);
  };
  detail::ring_all_reduce(send_recv, pg.rank(), pg.size(), t, op);
}

Tensor ring_reduce_scatter(ProcessGroup& pg, const Tensor& in, ReduceOp op) {
  const detail::SendRecvFn send_recv = [&pg](const Tensor& out, int dst, Tensor& in_buf, int src) {
    pg.send_recv(out, dst, in_buf, src, kRingTag);
  };
  return detail::ring_reduce_scatter(send_recv, pg.rank(), pg.size(), in, op);
}

}  // namespace zae::dist
