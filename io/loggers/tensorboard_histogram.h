// Histograms for TensorBoard (HistogramProto): how values are counted into buckets.
//   exponential (default, TensorFlow's layout): bucket limits 0, +-1e-12 * 1.1^k up to
//     1e20, and +-DBL_MAX (1551 limits), so any scale of weights or gradients keeps a
//     relative resolution of 10%. A value v counts in the first bucket whose limit is
//     greater than v. Runs of empty buckets are collapsed into one empty bucket ending
//     at the run's last limit (as TensorFlow writes them), so a file holds only a few
//     dozen buckets per histogram.
//   uniform: `uniform_buckets` equal-width buckets over [min, max] (over [v - 0.5, v + 0.5]
//     when every value is v); empty buckets are kept, the last limit is max, and max
//     itself counts in the last bucket.
// Invariants: non-finite values (NaN, +-inf) are left out of every statistic and counted
// in `skipped`; num == sum of bucket counts == the number of finite values; limits are
// increasing (strictly, barring subnormal ranges); an input with no finite value gives
// num == 0 and no buckets.
#pragma once

#include <cstddef>
#include <vector>

#include "io/loggers/tensorboard_proto.h"

namespace zae::io::tensorboard {

enum class HistogramBins { exponential, uniform };

struct HistogramOptions {
  HistogramBins bins = HistogramBins::exponential;
  int uniform_buckets = 30;  ///< bucket count of the uniform layout (>= 1)
};

/// TensorFlow's default limits (-DBL_MAX, ..., -1e-12, 0, 1e-12, ..., DBL_MAX), built once.
const std::vector<double>& exponential_bucket_limits();

/// Counts `n` values into a histogram. `skipped` (optional) receives the number of
/// non-finite values left out. Bad options (uniform_buckets < 1) are a zae::Error.
Histogram make_histogram(const double* values, size_t n, const HistogramOptions& options = {},
                         size_t* skipped = nullptr);
Histogram make_histogram(const float* values, size_t n, const HistogramOptions& options = {},
                         size_t* skipped = nullptr);
inline Histogram make_histogram(const std::vector<double>& values, const HistogramOptions& options = {},
                                size_t* skipped = nullptr) {
  return make_histogram(values.data(), values.size(), options, skipped);
}

}  // namespace zae::io::tensorboard
