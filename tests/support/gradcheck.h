// Float64 central-difference gradient check (DESIGN.md convention 9(b)).
//
// gradcheck(f, inputs) compares the vector-Jacobian product that autograd computes
// for a fixed random upstream gradient w (one backward: the gradients of
// sum_k <f(x)_k, w_k>) with central differences of that same scalar, perturbing
// every element of every requires-grad input in place through its storage.
//
// Invariants:
// - Inputs that require grad are float64 CPU tensors; they may be non-contiguous or
//   overlapping views (stride 0). Gradients are compared per *storage element* the
//   view addresses: for an expanded view the analytic gradient is summed over the
//   view positions that alias one element, which is exactly what a perturbation of
//   that element measures.
// - Perturbations write through raw pointers under NoGradGuard, never bump the
//   version counter and restore the original bits exactly.
// - Besides values, the check fails on gradients of the wrong shape/dtype/device,
//   outputs that should but do not require grad, forward values that differ
//   between grad mode and no-grad mode, outputs that change when the non-contiguous
//   inputs are replaced by contiguous copies of the same values (layout invariance),
//   and gradients or outputs that differ between two identical runs (determinism).
// - Exceptions thrown by f or by backward are caught and reported (status error).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace zae::test {

struct GradcheckOptions {
  double eps = 1e-6;   ///< central-difference step
  double atol = 1e-5;  ///< an element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-4;
  uint64_t seed = 0x6c0ffee;              ///< seed of the upstream gradient w (uniform in [-1, 1])
  bool check_determinism = true;          ///< run forward + backward twice and require identical bits
  std::vector<std::string> input_labels;  ///< optional names of the inputs, used in reports
};

struct GradcheckResult {
  enum class Status { passed, failed, error };
  Status status = Status::passed;
  /// Human-readable summary: what was checked and, on failure, the worst element.
  std::string report;
  /// Non-numeric failures (wrong gradient shape/dtype, missing graph, nondeterminism).
  std::vector<std::string> problems;
  /// The exception message when status == error.
  std::string error;

  int64_t elements_checked = 0;  ///< storage elements perturbed, over all inputs
  int64_t mismatches = 0;        ///< elements outside tolerance
  // The worst element (largest |a - n| / (atol + rtol * |n|)).
  double worst_score = 0.0;
  double worst_abs_error = 0.0;
  double worst_analytic = 0.0;
  double worst_numeric = 0.0;
  int worst_input = -1;
  std::vector<int64_t> worst_index;  ///< view index of the worst element in its input

  bool ok() const { return status == Status::passed; }
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;
using MultiGradFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

/// Checks the gradient of a single-output function. Inputs that do not require grad
/// (integer targets, masks, constant tensors) are passed through unperturbed.
GradcheckResult gradcheck(const GradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opts = {});
/// The same for a function with several outputs (e.g. split): every output gets its own w.
GradcheckResult gradcheck_multi(const MultiGradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opts = {});

/// Memory layouts under which an input is presented to the op, all holding the same
/// logical values as the base tensor (except `expanded`, see make_variant).
enum class Variant { contiguous, transposed, sliced, expanded };
const char* variant_name(Variant v);

/// Whether make_variant can build `v` for a tensor of this shape:
/// transposed needs >= 2 dims of size > 1, sliced needs >= 1 dim, expanded needs a
/// dim of size > 1.
bool variant_applies(const Shape& shape, Variant v);

/// A float64 input with base's logical values in layout `v`, requiring grad on the
/// underlying leaf (so the input itself is a non-leaf view for every variant but
/// contiguous):
/// - contiguous: a fresh contiguous leaf.
/// - transposed: a leaf holding base with its dims reversed, permuted back (non-contiguous).
/// - sliced: every other element (step 2) along the last dim of a leaf twice as long there
///   whose other elements hold junk values.
/// - expanded: a leaf with the first dim of size > 1 cut to size 1 (holding base's first
///   slice along it), expanded back to base's shape with stride 0. The logical values
///   are therefore base's first slice repeated along that dim.
Tensor make_variant(const Tensor& base, Variant v);

}  // namespace zae::test
