// View ops: new geometry over the same storage, each with its backward.
#include <algorithm>
#include <numeric>
#include <optional>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/copy.h"
#include "engine/ops/factory.h"

namespace zae {

namespace {

Tensor make_view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  return Tensor::make_view(base.storage(), std::move(shape), std::move(strides), offset, base.dtype());
}

// Resolves one -1 in `shape` against numel; checks the element count matches.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1;
  std::optional<size_t> infer;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      ZAE_CHECK(!infer, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = i;
    } else {
      ZAE_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer) {
    ZAE_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape), " is invalid for input of shape ",
              shape_str(from), " (", numel, " elements)");
    out[*infer] = numel / known;
  }
  ZAE_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape), " is invalid for input of shape ",
            shape_str(from), " (", numel, " elements)");
  return out;
}

// Strides that let `new_shape` alias `t`'s memory without a copy, if they exist.
// Old dims are grouped into runs that are contiguous among themselves; each run
// must be covered exactly by a run of new dims.
std::optional<Shape> view_strides(const Tensor& t, const Shape& new_shape) {
  const Shape& old_shape = t.shape();
  const Shape& old_st = t.strides();
  Shape new_st(new_shape.size(), 0);
  if (t.numel() == 0 || old_shape.empty()) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_st.empty() ? 1 : old_st.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    bool chunk_end = d == 0 || (old_shape[d - 1] != 1 && old_st[d - 1] != tensor_numel * chunk_base_stride);
    if (chunk_end) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        new_st[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_st[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_st;
}

void record_reshape_back(const char* name, const Tensor& in, Tensor& out) {
  Shape in_shape = in.shape();
  autograd::record(name, {in}, out, {}, [in_shape](const Tensor& g, const auto&) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "view", this->shape());
  auto st = view_strides(*this, shape);
  ZAE_CHECK(st.has_value(), "view: shape ", shape_str(shape), " is not compatible with the strides ",
            shape_str(strides()), " of a tensor of shape ", shape_str(this->shape()), "; use reshape()");
  Tensor out = make_view_of(*this, shape, *st, storage_offset());
  record_reshape_back("ViewBackward", *this, out);
  return out;
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "reshape", this->shape());
  if (view_strides(*this, shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const Shape& dims) const {
  ZAE_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(), " dims ", shape_str(dims),
            " for a tensor of shape ", shape_str(shape()));
  Shape shape(dims.size()), st(dims.size()), inverse(dims.size());
  std::vector<bool> used(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], "permute");
    ZAE_CHECK(!used[d], "permute: dim ", d, " repeated in ", shape_str(dims));
    used[d] = true;
    shape[i] = this->shape()[d];
    st[i] = strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  Tensor out = make_view_of(*this, shape, st, storage_offset());
  autograd::record("PermuteBackward", {*this}, out, {}, [inverse](const Tensor& g, const auto&) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) return *this;
  Shape perm(dim());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[wrap_dim(d0, "transpose")], perm[wrap_dim(d1, "transpose")]);
  return permute(perm);
}

Tensor Tensor::t() const {
  ZAE_CHECK(dim() >= 2, "t(): expects a tensor with >= 2 dims, got shape ", shape_str(shape()));
  return transpose(-2, -1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, "slice");
  ZAE_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = shape()[d];
  auto clampi = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  start = clampi(start);
  end = std::max(clampi(end), start);
  Shape sh = shape(), st = strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] = strides()[d] * step;
  Tensor out = make_view_of(*this, sh, st, storage_offset() + start * strides()[d]);
  Shape in_shape = shape();
  DType dt = dtype();
  Device dev = device();
  autograd::record("SliceBackward", {*this}, out, {}, [=](const Tensor& g, const auto&) {
    Tensor gi = zeros(in_shape, {.dtype = dt, .device = dev});
    copy_into(gi.slice(d, start, end, step), g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, "narrow");
  int64_t n = shape()[d];
  if (start < 0) start += n;
  ZAE_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start, " and length ", length,
            " are out of range for dim ", d, " of size ", n, " (shape ", shape_str(shape()), ")");
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, "select");
  int64_t n = shape()[d];
  ZAE_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of size ", n,
            " (shape ", shape_str(shape()), ")");
  if (index < 0) index += n;
  Shape sh = shape(), st = strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view_of(*this, sh, st, storage_offset() + index * strides()[d]);
  Shape in_shape = shape();
  DType dt = dtype();
  Device dev = device();
  autograd::record("SelectBackward", {*this}, out, {}, [=](const Tensor& g, const auto&) {
    Tensor gi = zeros(in_shape, {.dtype = dt, .device = dev});
    copy_into(gi.select(d, index), g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

Tensor Tensor::expand(const Shape& shape_in) const {
  ZAE_CHECK(shape_in.size() >= shape().size(), "expand: target shape ", shape_str(shape_in),
            " has fewer dims than the tensor's shape ", shape_str(shape()));
  size_t lead = shape_in.size() - shape().size();
  Shape sh(shape_in.size()), st(shape_in.size(), 0);
  for (size_t i = 0; i < shape_in.size(); ++i) {
    if (i < lead) {
      ZAE_CHECK(shape_in[i] >= 0, "expand: size -1 is not allowed for a new leading dim in ", shape_str(shape_in));
      sh[i] = shape_in[i];
      continue;
    }
    int64_t cur = shape()[i - lead];
    int64_t want = shape_in[i] == -1 ? cur : shape_in[i];
    ZAE_CHECK(cur == want || cur == 1, "expand: cannot expand shape ", shape_str(shape()), " to ",
              shape_str(shape_in), " (dim ", i, ": size ", cur, " is not 1)");
    sh[i] = want;
    st[i] = cur == want ? strides()[i - lead] : 0;
  }
  Tensor out = make_view_of(*this, sh, st, storage_offset());
  Shape in_shape = shape();
  autograd::record("ExpandBackward", {*this}, out, {}, [in_shape](const Tensor& g, const auto&) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
  return out;
}

Tensor Tensor::squeeze() const {
  Shape sh;
  for (int64_t s : shape())
    if (s != 1) sh.push_back(s);
  return reshape(sh);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, "squeeze");
  if (dim() == 0 || shape()[d] != 1) return view(shape());
  Shape sh = shape(), st = strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view_of(*this, sh, st, storage_offset());
  record_reshape_back("SqueezeBackward", *this, out);
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim() + 1;
  ZAE_CHECK(d >= -n && d < n, "unsqueeze: dim ", d, " is out of range for a tensor of shape ", shape_str(shape()),
            " (expected in [", -n, ", ", n - 1, "])");
  if (d < 0) d += n;
  ZAE_CHECK(n <= kMaxDims, "unsqueeze: result would have ", n, " dims (max ", kMaxDims, ")");
  Shape sh = shape(), st = strides();
  int64_t new_stride = d < dim() ? strides()[d] * shape()[d] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, new_stride);
  Tensor out = make_view_of(*this, sh, st, storage_offset());
  record_reshape_back("UnsqueezeBackward", *this, out);
  return out;
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, "flatten");
  end_dim = wrap_dim(end_dim, "flatten");
  ZAE_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape sh;
  for (int64_t i = 0; i < start_dim; ++i) sh.push_back(shape()[i]);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= shape()[i];
  sh.push_back(m);
  for (int64_t i = end_dim + 1; i < dim(); ++i) sh.push_back(shape()[i]);
  return reshape(sh);
}

}  // namespace zae
