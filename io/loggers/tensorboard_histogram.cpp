// Bucketing for TensorBoard histograms (see the header for the two layouts).
#include "io/loggers/tensorboard_histogram.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "engine/error.h"

namespace zae::io::tensorboard {
namespace {

std::vector<double> build_exponential_limits() {
  std::vector<double> positive;
  for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) positive.push_back(v);
  positive.push_back(DBL_MAX);
  std::vector<double> limits;
  limits.reserve(2 * positive.size() + 1);
  for (auto it = positive.rbegin(); it != positive.rend(); ++it) limits.push_back(-*it);
  limits.push_back(0.0);
  limits.insert(limits.end(), positive.begin(), positive.end());
  return limits;
}

struct Stats {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
};

template <class T>
Stats gather(const T* values, size_t n, size_t& skipped) {
  Stats s;
  s.min = INFINITY;
  s.max = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(values[i]);
    if (!std::isfinite(v)) {
      ++skipped;
      continue;
    }
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    s.num += 1;
    s.sum += v;
    s.sum_squares += v * v;
  }
  if (s.num == 0) s.min = s.max = 0;
  return s;
}

template <class T>
Histogram exponential(const T* values, size_t n, const Stats& s) {
  const std::vector<double>& limits = exponential_bucket_limits();
  std::vector<double> counts(limits.size(), 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(values[i]);
    if (!std::isfinite(v)) continue;
    size_t k = static_cast<size_t>(std::upper_bound(limits.begin(), limits.end(), v) - limits.begin());
    counts[std::min(k, limits.size() - 1)] += 1;  // v == DBL_MAX lands in the last bucket
  }
  Histogram h{s.min, s.max, s.num, s.sum, s.sum_squares, {}, {}};
  for (size_t k = 0; k < limits.size();) {
    if (counts[k] > 0) {
      h.bucket_limit.push_back(limits[k]);
      h.bucket.push_back(counts[k]);
      ++k;
      continue;
    }
    size_t end = k;  // a run of empty buckets becomes one, ending at the run's last limit
    while (end + 1 < limits.size() && counts[end + 1] == 0) ++end;
    h.bucket_limit.push_back(limits[end]);
    h.bucket.push_back(0.0);
    k = end + 1;
  }
  return h;
}

template <class T>
Histogram uniform(const T* values, size_t n, const Stats& s, int buckets) {
  double lo = s.min, hi = s.max;
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  // Work in halves when hi - lo overflows (values near +-DBL_MAX); exact otherwise.
  const double scale = std::isfinite(hi - lo) ? 1.0 : 0.5;
  const double width = (hi * scale - lo * scale) / buckets;  // > 0: hi > lo, buckets >= 1
  Histogram h{s.min, s.max, s.num, s.sum, s.sum_squares, {}, {}};
  h.bucket.assign(static_cast<size_t>(buckets), 0.0);
  for (int k = 0; k < buckets; ++k)
    h.bucket_limit.push_back(k + 1 == buckets ? hi : (lo * scale + width * (k + 1)) / scale);
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(values[i]);
    if (!std::isfinite(v)) continue;
    const double pos = width > 0 ? std::floor((v * scale - lo * scale) / width) : 0.0;
    const auto k = static_cast<size_t>(std::clamp(pos, 0.0, static_cast<double>(buckets - 1)));
    h.bucket[k] += 1;
  }
  return h;
}

template <class T>
Histogram make(const T* values, size_t n, const HistogramOptions& options, size_t* skipped_out) {
  ZAE_CHECK(options.bins != HistogramBins::uniform || options.uniform_buckets >= 1,
            "tensorboard histogram: uniform_buckets must be at least 1, got ", options.uniform_buckets);
  ZAE_CHECK(values != nullptr || n == 0, "tensorboard histogram: null values with n = ", n);
  size_t skipped = 0;
  const Stats s = gather(values, n, skipped);
  if (skipped_out) *skipped_out = skipped;
  if (s.num == 0) return Histogram{};
  return options.bins == HistogramBins::exponential ? exponential(values, n, s)
                                                    : uniform(values, n, s, options.uniform_buckets);
}

}  // namespace

const std::vector<double>& exponential_bucket_limits() {
  static const std::vector<double> limits = build_exponential_limits();
  return limits;
}

Histogram make_histogram(const double* values, size_t n, const HistogramOptions& options, size_t* skipped) {
  return make(values, n, options, skipped);
}

Histogram make_histogram(const float* values, size_t n, const HistogramOptions& options, size_t* skipped) {
  return make(values, n, options, skipped);
}

}  // namespace zae::io::tensorboard
