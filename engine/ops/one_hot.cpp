// one_hot: int64 (..., num_classes) encoding of int64/int32 indices, as
// torch.nn.functional.one_hot; num_classes < 0 infers max + 1. Every value must lie
// in [0, num_classes) (checked, the error names the value). No gradient.
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/index.h"

namespace zae {

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  ZAE_CHECK(indices.defined(), "one_hot: undefined indices tensor");
  ZAE_CHECK(indices.dtype() == DType::int64 || indices.dtype() == DType::int32, "one_hot: indices dtype ",
            indices.dtype(), " is not supported (expected int64 or int32)");
  ZAE_CHECK(indices.dim() < kMaxDims, "one_hot: indices of shape ", shape_str(indices.shape()),
            " leave no room for the class dim (max ", kMaxDims, " dims)");
  ZAE_CHECK(indices.device().is_cpu(), "one_hot: not implemented for device ", indices.device(), " (dtype ",
            indices.dtype(), ") in this build");
  Tensor idx = indices.contiguous();
  const int64_t n = idx.numel();
  return dispatch_index(idx.dtype(), "one_hot", [&](auto tag) {
    using I = typename decltype(tag)::type;
    const I* p = idx.data<I>();
    int64_t classes = num_classes;
    if (classes < 0) {
      ZAE_CHECK(n > 0, "one_hot: cannot infer num_classes from an empty indices tensor of shape ",
                shape_str(indices.shape()), "; pass num_classes");
      classes = kernels::cpu::max_index<I>(p, n) + 1;
    }
    int64_t pos = kernels::cpu::find_invalid_index<I>(p, n, classes);
    ZAE_CHECK(pos < 0, "one_hot: index ", static_cast<int64_t>(p[pos]), " at flat position ", pos,
              " is out of range for ", classes, " classes (expected values in [0, ", classes - 1, "])");
    Shape out_shape = indices.shape();
    out_shape.push_back(classes);
    Tensor out = empty(out_shape, {.dtype = DType::int64});
    kernels::cpu::one_hot<I>(out.data<int64_t>(), p, n, classes);
    return out;
  });
}

}  // namespace zae
