#include "io/batch.h"

#include <ostream>
#include <sstream>

#include "engine/error.h"
#include "io/pinned_memory.h"

namespace zae {

Batch::Batch(std::initializer_list<std::pair<std::string, Tensor>> named) {
  entries_.reserve(named.size());
  for (const auto& [name, tensor] : named) add(name, tensor);
}

Batch::Batch(std::initializer_list<Tensor> positional) {
  entries_.reserve(positional.size());
  for (const Tensor& t : positional) add(t);
}

Batch::Batch(std::vector<Tensor> positional) {
  entries_.reserve(positional.size());
  for (Tensor& t : positional) add(std::move(t));
}

Batch::Batch(std::vector<std::pair<std::string, Tensor>> named) {
  entries_.reserve(named.size());
  for (auto& [name, tensor] : named) add(std::move(name), std::move(tensor));
}

Batch& Batch::add(std::string name, Tensor tensor) {
  ZAE_CHECK(name.empty() || !contains(name), "Batch::add: an entry named '", name, "' already exists (entries: ",
            describe_entries(), ")");
  entries_.push_back(Entry{std::move(name), std::move(tensor)});
  return *this;
}

Batch& Batch::add(Tensor tensor) { return add(std::string(), std::move(tensor)); }

int64_t Batch::index_of(std::string_view name) const {
  if (name.empty()) return -1;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

bool Batch::contains(std::string_view name) const { return index_of(name) >= 0; }

const Batch::Entry& Batch::entry_at(int64_t index) const {
  const int64_t n = static_cast<int64_t>(entries_.size());
  ZAE_CHECK(index >= -n && index < n, "Batch: index ", index, " is out of range for a batch of ", n, " entries (",
            describe_entries(), ")");
  return entries_[static_cast<size_t>(index < 0 ? index + n : index)];
}

const Tensor& Batch::operator[](std::string_view name) const {
  int64_t i = index_of(name);
  ZAE_CHECK(i >= 0, "Batch: no entry named '", name, "' (entries: ", describe_entries(), ")");
  return entries_[static_cast<size_t>(i)].tensor;
}

Tensor& Batch::operator[](std::string_view name) {
  return const_cast<Tensor&>(static_cast<const Batch&>(*this)[name]);
}

std::vector<std::string> Batch::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

std::vector<Tensor> Batch::tensors() const {
  std::vector<Tensor> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.tensor);
  return out;
}

Batch Batch::to(Device device, bool non_blocking) const {
  Batch out;
  out.entries_.reserve(entries_.size());
  for (const Entry& e : entries_)
    out.entries_.push_back(Entry{e.name, e.tensor.defined() ? to_device(e.tensor, device, non_blocking) : e.tensor});
  return out;
}

Batch Batch::pin_memory() const {
  Batch out;
  out.entries_.reserve(entries_.size());
  for (const Entry& e : entries_) {
    const bool pinnable = e.tensor.defined() && e.tensor.device().is_cpu();
    out.entries_.push_back(Entry{e.name, pinnable ? zae::pin_memory(e.tensor) : e.tensor});
  }
  return out;
}

std::string Batch::describe_entries() const {
  if (entries_.empty()) return "none";
  std::ostringstream os;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i) os << ", ";
    if (entries_[i].name.empty()) os << '#' << i;
    else os << '\'' << entries_[i].name << '\'';
  }
  return os.str();
}

std::string Batch::str() const {
  std::ostringstream os;
  os << "Batch(";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (i) os << ", ";
    if (e.name.empty()) os << '#' << i;
    else os << e.name;
    os << ": ";
    if (e.tensor.defined()) os << shape_str(e.tensor.shape()) << ' ' << e.tensor.dtype() << ' ' << e.tensor.device();
    else os << "undefined";
  }
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Batch& b) { return os << b.str(); }

}  // namespace zae
