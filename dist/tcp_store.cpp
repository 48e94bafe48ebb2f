// TCPStore: the client half (every rank, rank 0 included) and the ownership of the server
// (rank 0). Wire protocol: dist/tcp_store_protocol.h; server: dist/tcp_store_server.h.
//
// Several threads may share one TCPStore: requests are sent whole under send_mu_, and the
// answers, tagged with their request ids, are read by whichever waiting thread is the
// current reader (Impl::reading) and handed to their requesters through `pending`; so a
// thread parked in get() never blocks another thread's set() on the same object.
// Invariants: every call waits at most its timeout (plus a short grace for the server's own
// timeout answer to arrive); a closed or broken connection is remembered (broken) and
// every later call fails at once with the same message; sends use MSG_NOSIGNAL (no
// SIGPIPE); the destructor says goodbye, closes, stops the server and never throws.
#include "dist/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "dist/tcp_store_protocol.h"
#include "dist/tcp_store_server.h"
#include "engine/error.h"

namespace zae::dist {

using namespace tcp_wire;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// Extra time a client gives the server to deliver its own timeout answer (which names
/// the keys still missing) before giving up on its own.
constexpr milliseconds kGrace{200};

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

/// host -> IPv4 address; false (with the reason in `error`) when it does not resolve.
bool resolve_ipv4(const std::string& host, int port, sockaddr_in& out, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = std::string("cannot resolve host '") + host + "': " + ::gai_strerror(rc);
    return false;
  }
  out = *reinterpret_cast<const sockaddr_in*>(res->ai_addr);
  out.sin_port = htons(static_cast<uint16_t>(port));
  ::freeaddrinfo(res);
  return true;
}

bool is_loopback(const sockaddr_in& a) { return (ntohl(a.sin_addr.s_addr) >> 24) == 127; }

}  // namespace

struct TCPStore::Impl {
  std::string host;
  int port = 0;
  int rank = 0;
  std::unique_ptr<TCPStoreServer> server;
  sockaddr_in server_addr{};  // rank 0: where its own client reaches its server
  int fd = -1;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  std::mutex send_mu;
  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  bool reading = false;
  std::string broken;  // non-empty: the connection is unusable, this says why
  Bytes inbuf;
  uint32_t next_id = 1;
  std::map<uint32_t, std::optional<Bytes>> pending;  // request id -> answer payload once here

  std::string where() const { return host + ":" + std::to_string(port); }
  std::string gone_message() const {
    return "the store at " + where() + " (served by rank 0) closed the connection: rank 0 is gone (it exited or "
           "crashed), so rank " + std::to_string(rank) + " cannot continue";
  }

  void connect(milliseconds timeout);
  /// Sends one request and returns its answer payload; nullopt when `deadline` passes
  /// first. Throws when the connection is (or becomes) broken.
  std::optional<Bytes> request(Writer& w, uint32_t id, Clock::time_point deadline);
  uint32_t new_id();
  void send_frame(const Bytes& frame, Clock::time_point deadline);
  void mark_broken(const std::string& why);  // needs mu
  /// Parses whole frames out of inbuf into `pending` (needs mu).
  void dispatch();
  [[noreturn]] void fail_no_answer(const char* what, long long waited_ms);
};

uint32_t TCPStore::Impl::new_id() {
  std::lock_guard<std::mutex> lock(mu);
  ZAE_CHECK(broken.empty(), broken);
  const uint32_t id = next_id++;
  pending[id] = std::nullopt;
  return id;
}

void TCPStore::Impl::mark_broken(const std::string& why) {
  if (broken.empty()) broken = why;
  cv.notify_all();
}

void TCPStore::Impl::send_frame(const Bytes& frame, Clock::time_point deadline) {
  std::lock_guard<std::mutex> send_lock(send_mu);
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    const int err = n < 0 ? errno : EPIPE;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      const int left = ms_until(deadline);
      pollfd p{fd, POLLOUT, 0};
      if (left > 0 && ::poll(&p, 1, left) >= 0) continue;
      std::lock_guard<std::mutex> lock(mu);
      // Part of a frame may be out: the stream cannot be trusted any more.
      mark_broken("TCPStore: rank " + std::to_string(rank) + " could not send to the store at " + where() +
                  " in time (the server is not reading; is rank 0 stuck?)");
      ZAE_FAIL(broken);
    }
    std::lock_guard<std::mutex> lock(mu);
    mark_broken(gone_message() + " (" + std::strerror(err) + ")");
    ZAE_FAIL(broken);
  }
}

void TCPStore::Impl::dispatch() {
  size_t offset = 0;
  for (;;) {
    size_t begin = 0, size = 0;
    const int f = next_frame(inbuf, offset, begin, size);
    if (f == 0) break;
    if (f < 0 || size < 5) {
      mark_broken("TCPStore: the peer at " + where() + " does not speak the zae store protocol (is another program "
                  "listening on that port?)");
      inbuf.clear();
      return;
    }
    Reader r(inbuf.data() + begin, size);
    r.u8();
    const uint32_t id = *r.u32();
    auto it = pending.find(id);
    if (it != pending.end()) it->second = Bytes(inbuf.begin() + static_cast<std::ptrdiff_t>(begin),
                                                inbuf.begin() + static_cast<std::ptrdiff_t>(begin + size));
    // else: the answer to a request its thread gave up on; dropped.
    offset = begin + size;
  }
  inbuf.erase(inbuf.begin(), inbuf.begin() + static_cast<std::ptrdiff_t>(offset));
  cv.notify_all();
}

std::optional<Bytes> TCPStore::Impl::request(Writer& w, uint32_t id, Clock::time_point deadline) {
  try {
    send_frame(w.finish(), deadline);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu);
    pending.erase(id);
    throw;
  }
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    auto it = pending.find(id);
    if (it->second) {
      Bytes answer = std::move(*it->second);
      pending.erase(it);
      return answer;
    }
    if (!broken.empty()) {
      pending.erase(it);
      ZAE_FAIL(broken);
    }
    if (Clock::now() >= deadline) {
      pending.erase(it);
      return std::nullopt;
    }
    if (reading) {
      cv.wait_until(lock, deadline);
      continue;
    }
    // Become the reader until something arrives or this request's deadline passes.
    reading = true;
    lock.unlock();
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, ms_until(deadline));
    uint8_t chunk[65536];
    ssize_t n = 0;
    int err = 0;
    if (pr > 0) {
      do n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);
      err = n < 0 ? errno : 0;
    }
    lock.lock();
    reading = false;
    if (pr > 0) {
      if (n > 0) {
        inbuf.insert(inbuf.end(), chunk, chunk + n);
        dispatch();
      } else if (n == 0 || (err != EAGAIN && err != EWOULDBLOCK)) {
        dispatch();  // answers that came before the close still count
        mark_broken(gone_message() + (n == 0 ? std::string() : " (" + std::string(std::strerror(err)) + ")"));
      }
    }
    cv.notify_all();
  }
}

void TCPStore::Impl::fail_no_answer(const char* what, long long waited_ms) {
  ZAE_FAIL("TCPStore: rank ", rank, " got no answer from the store at ", where(), " to ", what, " within ",
           waited_ms, " ms (is rank 0 overloaded or stuck?)");
}

void TCPStore::Impl::connect(milliseconds timeout) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + timeout;
  std::string last_error = "no attempt made";
  auto backoff = milliseconds(10);
  for (;;) {
    sockaddr_in addr = server_addr;
    std::string err;
    if (server || resolve_ipv4(host, port, addr, err)) {
      const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      ZAE_CHECK(s >= 0, "TCPStore: cannot create a socket: ", std::strerror(errno));
      int rc = ::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
      int e = rc == 0 ? 0 : errno;
      if (e == EINPROGRESS) {
        pollfd p{s, POLLOUT, 0};
        const int pr = ::poll(&p, 1, std::min(ms_until(deadline), 1000));
        if (pr > 0) {
          socklen_t len = sizeof e;
          ::getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len);
        } else {
          e = ETIMEDOUT;
        }
      }
      if (e == 0) {
        const int one = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd = s;
        break;
      }
      ::close(s);
      err = std::strerror(e);
    }
    last_error = err;
    const int left = ms_until(deadline);
    if (left <= 0)
      ZAE_FAIL("TCPStore: rank ", rank, " could not connect to the store at ", where(), " within ", timeout.count(),
               " ms (waited ", ms_since(t0), " ms; last error: ", last_error,
               "). Is rank 0 running, and do all ranks use the same MASTER_ADDR/MASTER_PORT?");
    std::this_thread::sleep_for(std::min(backoff, milliseconds(left)));
    backoff = std::min(backoff * 2, milliseconds(250));
  }
  // Introduce ourselves; the answer proves the peer is a zae store.
  const auto hello_deadline = std::max(deadline, Clock::now() + std::min(timeout, milliseconds(1000)));
  const uint32_t id = new_id();
  Writer w;
  w.u8(kHello).u32(id).u32(kMagic).u32(kVersion).u32(static_cast<uint32_t>(rank));
  const auto answer = request(w, id, hello_deadline);
  if (!answer)
    ZAE_FAIL("TCPStore: rank ", rank, " connected to ", where(), " but got no answer to its hello within ",
             ms_since(t0), " ms (is another program listening on that port?)");
  Reader r(answer->data(), answer->size());
  if (*r.u8() != kOk) {
    r.u32();
    ZAE_FAIL("TCPStore: the store at ", where(), " refused rank ", rank, ": ", r.str().value_or("(no reason)"));
  }
}

TCPStore::TCPStore(const std::string& host, int port, int rank, bool is_server, milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  ZAE_CHECK(port >= 0 && port <= 65535, "TCPStore: port ", port, " is outside [0, 65535] (host '", host, "')");
  ZAE_CHECK(is_server || port != 0, "TCPStore: a client needs the server's port; port 0 is only for the server (",
            host, ", rank ", rank, ")");
  ZAE_CHECK(timeout.count() > 0, "TCPStore: timeout must be positive, got ", timeout.count(), " ms");
  timeout_ = timeout;
  impl_->host = host;
  impl_->port = port;
  impl_->rank = rank;
  if (is_server) {
    // Loopback hosts are served on loopback only; any other host on every interface, as
    // the address other machines use to reach us need not be one we can bind.
    sockaddr_in addr{};
    std::string err;
    if (!resolve_ipv4(host, port, addr, err) || !is_loopback(addr)) {
      addr = sockaddr_in{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_ANY);
      addr.sin_port = htons(static_cast<uint16_t>(port));
    }
    impl_->server = std::make_unique<TCPStoreServer>(host, port, addr);
    impl_->port = impl_->server->port();
    impl_->server_addr = addr;
    if (!is_loopback(addr)) impl_->server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    impl_->server_addr.sin_port = htons(static_cast<uint16_t>(impl_->port));
  }
  impl_->connect(timeout);  // on a throw, ~Impl closes the socket and stops the server
}

TCPStore::~TCPStore() {
  if (!impl_) return;
  try {
    if (impl_->fd >= 0) {
      bool usable = false;
      {
        std::lock_guard<std::mutex> lock(impl_->mu);
        usable = impl_->broken.empty();
      }
      if (usable) {
        const uint32_t id = impl_->new_id();
        Writer w;
        w.u8(kBye).u32(id);
        impl_->request(w, id, Clock::now() + std::min(timeout_, milliseconds(2000)));
      }
    }
  } catch (...) {
    // Leaving anyway: the server then counts this rank as lost, which is the truth.
  }
  if (impl_->fd >= 0) {
    ::shutdown(impl_->fd, SHUT_RDWR);
    ::close(impl_->fd);
    impl_->fd = -1;
  }
  impl_->server.reset();  // stops and joins the server thread
}

void TCPStore::set(const std::string& key, const Bytes& value) {
  const auto t0 = Clock::now();
  const uint32_t id = impl_->new_id();
  Writer w;
  w.u8(kSet).u32(id).str(key).value(value);
  const auto answer = impl_->request(w, id, t0 + timeout_);
  if (!answer) impl_->fail_no_answer(("set('" + key + "')").c_str(), ms_since(t0));
}

Bytes TCPStore::get(const std::string& key) {
  const auto t0 = Clock::now();
  const uint32_t id = impl_->new_id();
  Writer w;
  w.u8(kGet).u32(id).u32(wire_ms(timeout_.count())).str(key);
  const auto answer = impl_->request(w, id, t0 + timeout_ + kGrace);
  if (!answer || (*answer)[0] == kTimeout)
    ZAE_FAIL("store: timed out after ", ms_since(t0), " ms waiting for key(s) ['", key, "'] (TCPStore at ",
             impl_->where(), ", rank ", impl_->rank, ", timeout ", timeout_.count(), " ms)");
  Reader r(answer->data(), answer->size());
  r.u8();
  r.u32();
  auto value = r.value();
  ZAE_CHECK(value.has_value(), "TCPStore: malformed answer to get('", key, "') from ", impl_->where());
  return std::move(*value);
}

int64_t TCPStore::add(const std::string& key, int64_t delta) {
  const auto t0 = Clock::now();
  const uint32_t id = impl_->new_id();
  Writer w;
  w.u8(kAdd).u32(id).str(key).i64(delta);
  const auto answer = impl_->request(w, id, t0 + timeout_);
  if (!answer) impl_->fail_no_answer(("add('" + key + "')").c_str(), ms_since(t0));
  Reader r(answer->data(), answer->size());
  const uint8_t status = *r.u8();
  r.u32();
  if (status == kError) ZAE_FAIL(r.str().value_or("store: add('" + key + "') refused by the server"));
  const auto value = r.i64();
  ZAE_CHECK(value.has_value(), "TCPStore: malformed answer to add('", key, "') from ", impl_->where());
  return *value;
}

bool TCPStore::check(const std::vector<std::string>& keys) {
  const auto t0 = Clock::now();
  const uint32_t id = impl_->new_id();
  Writer w;
  w.u8(kCheck).u32(id).keys(keys);
  const auto answer = impl_->request(w, id, t0 + timeout_);
  if (!answer) impl_->fail_no_answer("check", ms_since(t0));
  Reader r(answer->data(), answer->size());
  r.u8();
  r.u32();
  return r.u8().value_or(0) != 0;
}

void TCPStore::wait(const std::vector<std::string>& keys, milliseconds timeout) {
  const auto t0 = Clock::now();
  const uint32_t id = impl_->new_id();
  Writer w;
  w.u8(kWait).u32(id).u32(wire_ms(timeout.count())).keys(keys);
  const auto answer = impl_->request(w, id, t0 + timeout + kGrace);
  std::vector<std::string> missing = keys;
  if (answer && (*answer)[0] == kOk) return;
  if (answer) {
    Reader r(answer->data(), answer->size());
    r.u8();
    r.u32();
    if (auto m = r.keys()) missing = std::move(*m);
  }
  ZAE_FAIL("store: timed out after ", ms_since(t0), " ms waiting for key(s) ", missing, " (TCPStore at ",
           impl_->where(), ", rank ", impl_->rank, ", timeout ", timeout.count(), " ms)");
}

std::vector<int> TCPStore::lost_ranks() {
  try {
    const uint32_t id = impl_->new_id();
    Writer w;
    w.u8(kLost).u32(id);
    const auto answer = impl_->request(w, id, Clock::now() + std::min(timeout_, milliseconds(2000)));
    if (!answer) return {};
    Reader r(answer->data(), answer->size());
    r.u8();
    r.u32();
    const uint32_t n = r.u32().value_or(0);
    std::vector<int> ranks;
    for (uint32_t i = 0; i < n; ++i)
      if (auto v = r.u32()) ranks.push_back(static_cast<int>(static_cast<int32_t>(*v)));
    return ranks;
  } catch (...) {
    return {};
  }
}

int TCPStore::port() const { return impl_->port; }
const std::string& TCPStore::host() const { return impl_->host; }

}  // namespace zae::dist
