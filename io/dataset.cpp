#include "io/dataset.h"

#include <sstream>

#include "engine/error.h"

namespace zae {

namespace {
std::string entry_label(const Batch& b, size_t i) {
  const std::string& name = b.entries()[i].name;
  std::string out(1, name.empty() ? '#' : '\'');
  out += name.empty() ? std::to_string(i) : name + '\'';
  return out;
}
}  // namespace

TensorDataset::TensorDataset(Batch tensors) : tensors_(std::move(tensors)) {
  ZAE_CHECK(!tensors_.empty(), "TensorDataset: needs at least one tensor");
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    ZAE_CHECK(t.defined(), "TensorDataset: tensor ", entry_label(tensors_, i), " is undefined");
    ZAE_CHECK(t.dim() >= 1, "TensorDataset: tensor ", entry_label(tensors_, i),
              " is zero-dimensional; every tensor needs a first (sample) dimension");
  }
  size_ = tensors_[0].size(0);
  for (size_t i = 1; i < tensors_.size(); ++i) {
    if (tensors_[i].size(0) == size_) continue;
    std::ostringstream shapes;
    for (size_t j = 0; j < tensors_.size(); ++j)
      shapes << (j ? ", " : "") << entry_label(tensors_, j) << ": " << shape_str(tensors_[j].shape());
    ZAE_FAIL("TensorDataset: all tensors must have the same size in dim 0 (the number of samples), got ",
             shapes.str());
  }
}

Batch TensorDataset::get(int64_t index) const {
  ZAE_CHECK(index >= 0 && index < size_, "TensorDataset: index ", index, " is out of range for a dataset of ", size_,
            " samples");
  Batch out;
  for (const Batch::Entry& e : tensors_) out.add(e.name, e.tensor.select(0, index));
  return out;
}

}  // namespace zae
