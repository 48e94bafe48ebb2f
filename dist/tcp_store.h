// TCPStore: a Store served over TCP by one process (rank 0 of the job) to all others.
// Wire protocol: length-prefixed binary requests on one persistent connection per
// client; the server is one thread polling every connection (no thread per client).
// Every client introduces itself with its rank; a connection that closes without a
// goodbye marks that rank as lost (lost_ranks()), which is how a survivor of a failed
// collective names the rank that died.
// Invariants: as Store (no call waits longer than its timeout); a port already in use is
// a zae::Error that names host:port and suggests MASTER_PORT / --master-port / another
// tcp:// port; a client that cannot reach the server retries until the timeout, then
// throws naming host:port and the last socket error; the server outlives its clients
// only as long as the owning object; destructors never throw.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "dist/store.h"

namespace zae::dist {

class TCPStore final : public Store {
 public:
  /// is_server: listen on host:port (port 0: a free port, see port()) and serve; every
  /// instance, the server's included, is also a client with the given rank.
  TCPStore(const std::string& host, int port, int rank, bool is_server,
           std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~TCPStore() override;

  void set(const std::string& key, const Bytes& value) override;
  Bytes get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  using Store::wait;
  std::vector<int> lost_ranks() override;

  /// The port the server listens on (the real one when constructed with port 0).
  int port() const;
  const std::string& host() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zae::dist
