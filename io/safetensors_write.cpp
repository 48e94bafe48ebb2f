// Writing safetensors byte-identically to the reference writer: "__metadata__" first,
// tensors sorted by the reference's dtype order (descending) then name, packed with
// no gaps, compact JSON padded with spaces to a multiple of 8.
// Invariant: the header is complete (every offset known) before any data is written,
// and files reach their path only through write_file_atomic.
#include <algorithm>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/safetensors_format.h"

namespace zae::io {

namespace detail {

namespace {

// Byte range [lo, hi) of a view within its storage (empty for zero elements).
std::pair<uint64_t, uint64_t> byte_range(const Tensor& t) {
  if (t.numel() == 0) return {0, 0};
  int64_t lo = t.storage_offset(), hi = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t extent = (t.shape()[d] - 1) * t.strides()[d];
    (extent < 0 ? lo : hi) += extent;
  }
  const auto isz = static_cast<uint64_t>(t.element_size());
  return {static_cast<uint64_t>(lo) * isz, (static_cast<uint64_t>(hi) + 1) * isz};
}

void check_utf8(std::string_view s, const char* what) {
  const size_t bad = json::find_invalid_utf8(s);
  ZAE_CHECK(bad == std::string_view::npos, "save_safetensors: ", what, " ", json::quote(std::string(s.substr(0, bad))),
            "... is not valid UTF-8 (byte ", bad, ")");
}

}  // namespace

WritePlan plan_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata, const char* tied_hint) {
  std::unordered_set<std::string> names;
  for (const auto& [name, t] : tensors) {
    check_utf8(name, "tensor name");
    ZAE_CHECK(name != "__metadata__", "save_safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    ZAE_CHECK(names.insert(name).second, "save_safetensors: tensor name ", json::quote(name), " is given twice");
    ZAE_CHECK(t.defined(), "save_safetensors: tensor ", json::quote(name), " is undefined");
  }
  for (const auto& [k, v] : metadata) {
    check_utf8(k, "metadata key");
    check_utf8(v, "metadata value");
  }

  // Two names over overlapping memory would be stored twice and come back untied.
  std::unordered_map<const StorageImpl*, std::vector<size_t>> by_storage;
  for (size_t i = 0; i < tensors.size(); ++i) by_storage[tensors[i].second.storage().get()].push_back(i);
  for (auto& [storage, idx] : by_storage) {
    if (idx.size() < 2) continue;
    std::vector<std::pair<std::pair<uint64_t, uint64_t>, size_t>> ranges;
    for (size_t i : idx)
      if (tensors[i].second.numel() > 0) ranges.push_back({byte_range(tensors[i].second), i});
    std::sort(ranges.begin(), ranges.end());
    for (size_t k = 1; k < ranges.size(); ++k) {
      const auto& [a, ia] = ranges[k - 1];
      const auto& [b, ib] = ranges[k];
      ZAE_CHECK(b.first >= a.second, "save_safetensors: tensors ", json::quote(tensors[ia].first), " and ",
                json::quote(tensors[ib].first), " share memory (bytes [", a.first, ", ", a.second, ") and [", b.first,
                ", ", b.second, ") of one storage); safetensors stores every name separately: ", tied_hint);
    }
  }

  WritePlan plan;
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int oa = st_dtype_of(tensors[a].second.dtype()).order, ob = st_dtype_of(tensors[b].second.dtype()).order;
    return oa != ob ? oa > ob : tensors[a].first < tensors[b].first;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      json::append_quoted(header, k);
      header += ':';
      json::append_quoted(header, v);
    }
    header += '}';
  }
  NoGradGuard no_grad;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(Device::cpu());
    if (!c.is_contiguous()) c = c.contiguous();
    if (header.size() > 1) header += ',';
    json::append_quoted(header, name);
    header += ":{\"dtype\":\"";
    header += st_dtype_of(c.dtype()).name;
    header += "\",\"shape\":[";
    for (int64_t d = 0; d < c.dim(); ++d) {
      if (d) header += ',';
      header += std::to_string(c.shape()[d]);
    }
    const uint64_t end = offset + c.nbytes();
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(end);
    header += "]}";
    offset = end;
    plan.data.push_back(std::move(c));
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  const uint64_t n = header.size();
  plan.prefix.resize(8);
  for (int i = 0; i < 8; ++i) plan.prefix[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  plan.prefix += header;
  plan.data_bytes = offset;
  return plan;
}

void write_plan(std::FILE* f, const WritePlan& plan, const std::string& path) {
  write_all(f, plan.prefix.data(), plan.prefix.size(), path);
  for (const Tensor& t : plan.data) write_all(f, t.raw_data(), t.nbytes(), path);
}

}  // namespace detail

namespace {
constexpr const char* kTiedHint = "clone() one of them, or save a module with save_module_safetensors";
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  const detail::WritePlan plan = detail::plan_safetensors(tensors, metadata, kTiedHint);
  std::string out;
  out.reserve(plan.prefix.size() + plan.data_bytes);
  out += plan.prefix;
  for (const Tensor& t : plan.data)
    if (t.nbytes() > 0) out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const detail::WritePlan plan = detail::plan_safetensors(tensors, metadata, kTiedHint);
  write_file_atomic(path, [&](std::FILE* f) { detail::write_plan(f, plan, path); });
}

}  // namespace zae::io
