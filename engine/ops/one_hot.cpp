// one_hot: int64 (..., num_classes) encoding of int64/int32 indices, as
// torch.nn.functional.one_hot; num_classes < 0 infers max + 1. Every value must lie
// in [0, num_classes) (checked, the error names the value). No gradient. On CUDA the
// output stays on the device; the check (and the inferred max) is one device scan and
// one read-back (engine/ops/index_check.h).
#include <limits>

#include "engine/ops/factory.h"
#include "engine/ops/index_check.h"
#include "engine/ops/nn.h"
#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/index.h"
#endif

namespace zae {

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  ZAE_CHECK(indices.defined(), "one_hot: undefined indices tensor");
  ZAE_CHECK(indices.dtype() == DType::int64 || indices.dtype() == DType::int32, "one_hot: indices dtype ",
            indices.dtype(), " is not supported (expected int64 or int32)");
  ZAE_CHECK(indices.dim() < kMaxDims, "one_hot: indices of shape ", shape_str(indices.shape()),
            " leave no room for the class dim (max ", kMaxDims, " dims)");
#ifdef ZAE_WITH_CUDA
  const bool has_kernels = indices.device().is_cpu() || indices.device().is_cuda();
#else
  const bool has_kernels = indices.device().is_cpu();
#endif
  ZAE_CHECK(has_kernels, "one_hot: not implemented for device ", indices.device(), " (dtype ", indices.dtype(),
            ") in this build");
  Tensor idx = indices.detach().contiguous();
  const int64_t n = idx.numel();
  int64_t classes = num_classes;
  int64_t pos = -1;
  if (classes < 0) {
    ZAE_CHECK(n > 0, "one_hot: cannot infer num_classes from an empty indices tensor of shape ",
              shape_str(indices.shape()), "; pass num_classes");
    // Only negative values can be out of range for max + 1 classes: one scan finds both.
    const detail::IndexScan scan =
        detail::scan_indices("one_hot", idx, std::numeric_limits<int64_t>::max(), /*want_max=*/true);
    classes = scan.max_value + 1;
    pos = scan.first_invalid;
  } else {
    pos = detail::scan_indices("one_hot", idx, classes).first_invalid;
  }
  ZAE_CHECK(pos < 0, "one_hot: index ", detail::index_value_at(idx, pos), " at flat position ", pos,
            " is out of range for ", classes, " classes (expected values in [0, ", classes - 1, "])");
  Shape out_shape = indices.shape();
  out_shape.push_back(classes);
  Tensor out = empty(out_shape, {.dtype = DType::int64, .device = idx.device()});
  dispatch_index(idx.dtype(), "one_hot", [&](auto tag) {
    using I = typename decltype(tag)::type;
    if (idx.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
      const int dev = idx.device().index;
      cuda::DeviceGuard guard(dev);
      kernels::cuda::one_hot<I>(out.data<int64_t>(), idx.data<I>(), n, classes, cuda::current_stream(dev));
#else
      ZAE_FAIL("one_hot: CUDA tensor in a build without the CUDA backend");
#endif
    } else {
      kernels::cpu::one_hot<I>(out.data<int64_t>(), idx.data<I>(), n, classes);
    }
  });
  return out;
}

}  // namespace zae
