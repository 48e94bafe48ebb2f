// Store: the small key-value service through which the processes of a job find each
// other (rendezvous) and exchange setup data (Gloo's pair addresses, NCCL's unique id).
// Implementations: TCPStore (served by rank 0, dist/tcp_store.h), FileStore (a file on a
// shared filesystem, dist/file_store.h), MemoryStore (threads of one process, tests).
// Invariants: every blocking call (get, wait) gives up after timeout() with a zae::Error
// that names the missing keys and the time waited, never hangs; values are bytes; add()
// is atomic across all clients; methods are safe to call from several threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace zae::dist {

using Bytes = std::vector<uint8_t>;

class Store {
 public:
  virtual ~Store() = default;

  /// Sets key to value (overwrites).
  virtual void set(const std::string& key, const Bytes& value) = 0;
  /// The value of key, waiting up to timeout() for it to be set.
  virtual Bytes get(const std::string& key) = 0;
  /// Adds delta to the integer stored at key (absent = 0) and returns the new value. The
  /// integer is stored as decimal text (get() returns e.g. "3"); a key holding anything
  /// else is an error.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  /// Whether all keys are set now (does not wait).
  virtual bool check(const std::vector<std::string>& keys) = 0;
  /// Waits until all keys are set; throws after `timeout` naming the keys still missing.
  virtual void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) = 0;
  void wait(const std::vector<std::string>& keys) { wait(keys, timeout()); }

  /// Ranks known to have gone away without leaving cleanly (a TCPStore client whose
  /// connection closed before it said goodbye). Used to name the culprit when a
  /// collective fails. Empty when the store cannot tell. Never throws.
  virtual std::vector<int> lost_ranks() { return {}; }

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Conveniences over the byte interface.
  void set_string(const std::string& key, const std::string& value) { set(key, Bytes(value.begin(), value.end())); }
  std::string get_string(const std::string& key) {
    const Bytes b = get(key);
    return std::string(b.begin(), b.end());
  }

 protected:
  std::chrono::milliseconds timeout_{std::chrono::minutes(5)};
};

/// The integer in `value` written as decimal text (Store::add's format); throws naming the key otherwise.
int64_t parse_store_integer(const std::string& key, const Bytes& value);

}  // namespace zae::dist
