// FileStore: a Store kept in one file on a filesystem every rank can reach (init_method
// file:///path). Writers append records under an exclusive lock (flock); readers replay
// the file. The last of `world_size` users to close it removes the file.
// Invariants: as Store; a file that is not a FileStore (bad magic, torn record) is a
// zae::Error naming the path and offset.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "dist/store.h"

namespace zae::dist {

class FileStore final : public Store {
 public:
  FileStore(std::string path, int world_size, std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~FileStore() override;

  void set(const std::string& key, const Bytes& value) override;
  Bytes get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  using Store::wait;

  const std::string& path() const { return path_; }

 private:
  /// Takes flock(`op`) on fd_ and replays records appended since the last call (needs mu_).
  void lock_and_refresh(int op);
  void unlock();
  void append(uint8_t type, const std::string& key, const Bytes& value);  // needs LOCK_EX

  std::string path_;
  int world_size_;
  int fd_ = -1;
  std::mutex mu_;                       // one user of fd_ (and its flock) at a time in this process
  std::map<std::string, Bytes> data_;  // the file replayed up to offset_
  uint64_t offset_ = 0;
};

}  // namespace zae::dist
