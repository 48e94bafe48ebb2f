// default_collate: entry k of the batch = entry k of every sample stacked along a
// new dim 0. CPU samples of one dtype and shape are copied straight into the
// output (one memcpy each); anything else goes through zae::stack.
#include <cstring>
#include <string>

#include "engine/error.h"
#include "engine/ops/shape.h"
#include "io/dataloader.h"

namespace zae {

namespace {
std::string label(const std::string& name, size_t k) {
  std::string out(1, name.empty() ? '#' : '\'');
  out += name.empty() ? std::to_string(k) : name + '\'';
  return out;
}
}  // namespace

Batch default_collate(std::vector<Batch>&& samples) {
  ZAE_CHECK(!samples.empty(), "default_collate: no samples to collate");
  const Batch& first = samples[0];
  for (size_t i = 1; i < samples.size(); ++i) {
    ZAE_CHECK(samples[i].size() == first.size(), "default_collate: sample ", i, " has ", samples[i].size(),
              " entries (", samples[i].str(), ") but sample 0 has ", first.size(), " (", first.str(), ")");
    for (size_t k = 0; k < first.size(); ++k)
      ZAE_CHECK(samples[i].entries()[k].name == first.entries()[k].name, "default_collate: entry ", k, " of sample ",
                i, " is ", label(samples[i].entries()[k].name, k), " but in sample 0 it is ",
                label(first.entries()[k].name, k));
  }
  const int64_t count = static_cast<int64_t>(samples.size());
  Batch out;
  for (size_t k = 0; k < first.size(); ++k) {
    const std::string& name = first.entries()[k].name;
    const Tensor& t0 = first.entries()[k].tensor;
    ZAE_CHECK(t0.defined(), "default_collate: entry ", label(name, k), " of sample 0 is undefined");
    bool fast = t0.device().is_cpu() && t0.is_contiguous();
    for (size_t i = 1; i < samples.size(); ++i) {
      const Tensor& t = samples[i].entries()[k].tensor;
      ZAE_CHECK(t.defined(), "default_collate: entry ", label(name, k), " of sample ", i, " is undefined");
      ZAE_CHECK(t.shape() == t0.shape(), "default_collate: entry ", label(name, k), " of sample ", i, " has shape ",
                shape_str(t.shape()), " but sample 0 has ", shape_str(t0.shape()),
                "; samples of different shapes need a custom collate");
      ZAE_CHECK(t.dtype() == t0.dtype(), "default_collate: entry ", label(name, k), " of sample ", i, " has dtype ",
                t.dtype(), " but sample 0 has ", t0.dtype());
      ZAE_CHECK(t.device() == t0.device(), "default_collate: entry ", label(name, k), " of sample ", i, " is on ",
                t.device(), " but sample 0 is on ", t0.device());
      fast = fast && t.is_contiguous();
    }
    Tensor batched;
    if (fast) {
      Shape shape = t0.shape();
      shape.insert(shape.begin(), count);
      batched = Tensor::empty(shape, {.dtype = t0.dtype()});
      const size_t bytes = t0.nbytes();
      auto* dst = static_cast<char*>(batched.raw_data());
      if (bytes > 0)
        for (size_t i = 0; i < samples.size(); ++i)
          std::memcpy(dst + i * bytes, samples[i].entries()[k].tensor.raw_data(), bytes);
    } else {
      std::vector<Tensor> parts;
      parts.reserve(samples.size());
      for (const Batch& s : samples) parts.push_back(s.entries()[k].tensor);
      batched = stack(parts, 0);
    }
    out.add(name, std::move(batched));
  }
  return out;
}

}  // namespace zae
