// TCPStoreServer (private to dist/tcp_store*.cpp): the server half of TCPStore, run by
// rank 0. One thread poll()s the listening socket, a wake-up eventfd and every client
// connection (no thread per client); all state (the key-value map, the parked get/wait
// requests, the lost ranks) belongs to that thread alone. Protocol: dist/tcp_store_protocol.h.
// Invariants: the constructor has bound and is listening when it returns (or throws a
// zae::Error naming host:port); a client that closes its connection after its hello but
// before its goodbye is recorded as lost; every parked request is answered when its keys
// are set or its timeout passes, whichever is first; the destructor stops and joins the
// thread, closes every socket and never throws.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dist/store.h"

namespace zae::dist {

class TCPStoreServer {
 public:
  /// Listens on `bind_addr` (port 0: the OS picks one); `host`/`port` only name it in errors.
  TCPStoreServer(const std::string& host, int port, const sockaddr_in& bind_addr);
  ~TCPStoreServer();
  TCPStoreServer(const TCPStoreServer&) = delete;
  TCPStoreServer& operator=(const TCPStoreServer&) = delete;

  /// The port actually listened on.
  int port() const { return port_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Conn {
    int rank = -1;  // -1 until the hello
    bool bye = false;
    bool closing = false;  // close once `out` is flushed (protocol errors)
    Bytes in;
    Bytes out;
  };
  struct Parked {
    int fd;
    uint32_t request_id;
    bool is_get;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };

  void run();
  void accept_all();
  /// Reads what is available; false when the connection ended or broke.
  bool read_from(int fd, Conn& c);
  /// Handles every whole frame in c.in; false on a protocol error.
  bool handle_frames(int fd, Conn& c);
  bool handle(int fd, Conn& c, const uint8_t* p, size_t n);
  void respond(int fd, Bytes frame);
  void flush(int fd, Conn& c);
  void close_conn(int fd);
  void answer_ready();
  void expire_parked(Clock::time_point now);
  bool all_set(const std::vector<std::string>& keys) const;
  std::vector<std::string> missing(const std::vector<std::string>& keys) const;

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  // Owned by the server thread.
  std::map<int, Conn> conns_;
  std::map<std::string, Bytes> data_;
  std::list<Parked> parked_;
  std::set<int> lost_;
};

}  // namespace zae::dist
