// MemoryStore: a Store shared by the threads of one process (tests, and a world of
// size 1). Invariants: as Store; all state behind one mutex and a condition variable.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>

#include "dist/store.h"

namespace zae::dist {

class MemoryStore final : public Store {
 public:
  void set(const std::string& key, const Bytes& value) override;
  Bytes get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  using Store::wait;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Bytes> data_;
};

}  // namespace zae::dist
