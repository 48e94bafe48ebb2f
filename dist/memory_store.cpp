#include "dist/memory_store.h"


#include "engine/error.h"

namespace zae::dist {

void MemoryStore::set(const std::string& key, const Bytes& value) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    data_[key] = value;
  }
  cv_.notify_all();
}

Bytes MemoryStore::get(const std::string& key) {
  wait({key}, timeout());
  std::lock_guard<std::mutex> lock(mu_);
  return data_.at(key);
}

int64_t MemoryStore::add(const std::string& key, int64_t delta) {
  int64_t value = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Bytes& b = data_[key];
    if (!b.empty()) value = parse_store_integer(key, b);
    value += delta;
    const std::string text = std::to_string(value);
    b.assign(text.begin(), text.end());
  }
  cv_.notify_all();
  return value;
}

bool MemoryStore::check(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& k : keys)
    if (!data_.count(k)) return false;
  return true;
}

void MemoryStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto all_set = [&] {
    for (const std::string& k : keys)
      if (!data_.count(k)) return false;
    return true;
  };
  if (cv_.wait_for(lock, timeout, all_set)) return;
  std::vector<std::string> missing;
  for (const std::string& k : keys)
    if (!data_.count(k)) missing.push_back(k);
  ZAE_FAIL("store: timed out after ", timeout.count(), " ms waiting for key(s) ", missing);
}

}  // namespace zae::dist
