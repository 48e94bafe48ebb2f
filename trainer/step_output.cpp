#include "trainer/step_output.h"

#include "engine/ops/factory.h"

namespace zae {

StepOutput::StepOutput(std::initializer_list<std::pair<std::string, Tensor>> items) {
  for (const auto& [name, value] : items) set(name, value);
}

void StepOutput::set(const std::string& name, const Tensor& value) {
  ZAE_CHECK(value.defined(), "StepOutput: value '", name, "' is an undefined tensor");
  for (auto& item : items_)
    if (item.first == name) {
      item.second = value;
      return;
    }
  items_.emplace_back(name, value);
}

void StepOutput::set(const std::string& name, double value) {
  set(name, scalar_tensor(value, {.dtype = DType::float64}));
}

bool StepOutput::contains(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return true;
  return false;
}

const Tensor& StepOutput::at(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return item.second;
  std::string names;
  for (const auto& item : items_) names += (names.empty() ? "" : ", ") + item.first;
  ZAE_FAIL("step output has no '", name, "' (it has: ", names.empty() ? "nothing" : names, ")");
}

}  // namespace zae
