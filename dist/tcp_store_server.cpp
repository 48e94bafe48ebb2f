// TCPStoreServer: see dist/tcp_store_server.h. Sockets are non-blocking; a response that
// does not fit the socket's send buffer waits in Conn::out and goes out on POLLOUT, so one
// slow client never stalls the others.
#include "dist/tcp_store_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dist/tcp_store_protocol.h"
#include "engine/error.h"

namespace zae::dist {

using namespace tcp_wire;

TCPStoreServer::TCPStoreServer(const std::string& host, int port, const sockaddr_in& bind_addr) {
  const std::string where = host + ":" + std::to_string(port);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ZAE_CHECK(listen_fd_ >= 0, "TCPStore: cannot create a socket to serve ", where, ": ", std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&bind_addr), sizeof bind_addr) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    if (err == EADDRINUSE)
      ZAE_FAIL("TCPStore: cannot serve the store on ", where,
               ": address already in use (another job, or an earlier run of this one, holds port ", port,
               "). Choose another port: set MASTER_PORT, pass zae-launch --master-port, or use another "
               "tcp://host:port in init_method");
    ZAE_FAIL("TCPStore: cannot bind ", where, " to serve the store: ", std::strerror(err),
             err == EADDRNOTAVAIL ? " (the address is not one of this machine's)" : "");
  }
  if (::listen(listen_fd_, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    ZAE_FAIL("TCPStore: cannot listen on ", where, ": ", std::strerror(err));
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int err = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    ZAE_FAIL("TCPStore: eventfd for the server of ", where, " failed: ", std::strerror(err));
  }
  thread_ = std::thread([this] { run(); });
}

TCPStoreServer::~TCPStoreServer() {
  stop_.store(true);
  const uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] const ssize_t r = ::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (auto& [fd, c] : conns_) ::close(fd);
  conns_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void TCPStoreServer::run() {
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [fd, c] : conns_)
      fds.push_back({fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
    int timeout_ms = -1;
    if (!parked_.empty()) {
      Clock::time_point first = parked_.front().deadline;
      for (const Parked& p : parked_) first = std::min(first, p.deadline);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(first - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left + 1, 0, 60'000));
    }
    const int r = ::poll(fds.data(), fds.size(), timeout_ms);
    if (r < 0 && errno != EINTR) break;  // cannot happen with valid fds; clients then see EOF
    if (stop_.load()) break;
    if (r > 0) {
      if (fds[1].revents & POLLIN) accept_all();
      for (size_t i = 2; i < fds.size(); ++i) {
        const int fd = fds[i].fd;
        auto it = conns_.find(fd);
        if (it == conns_.end() || fds[i].revents == 0) continue;
        Conn& c = it->second;
        bool alive = true;
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          const bool open = read_from(fd, c);  // frames that came before an EOF still count (a goodbye)
          alive = handle_frames(fd, c) && open;
        }
        if (alive && !c.out.empty() && (fds[i].revents & POLLOUT)) flush(fd, c);
        if (!alive) {
          // A protocol error still gets its queued answer out, best effort.
          if (!c.out.empty()) flush(fd, c);
          close_conn(fd);
        }
      }
    }
    expire_parked(Clock::now());
  }
}

void TCPStoreServer::accept_all() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an aborted connection: nothing to do
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conns_[fd] = Conn{};
  }
}

bool TCPStoreServer::read_from(int fd, Conn& c) {
  uint8_t chunk[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      c.in.insert(c.in.end(), chunk, chunk + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // EOF or a reset
  }
}

bool TCPStoreServer::handle_frames(int fd, Conn& c) {
  size_t offset = 0;
  bool ok = true;
  while (ok) {
    size_t begin = 0, size = 0;
    const int f = next_frame(c.in, offset, begin, size, c.rank < 0 ? kMaxHelloFrame : kMaxFrame);
    if (f == 0) break;
    if (f < 0) {
      ok = false;
      break;
    }
    ok = handle(fd, c, c.in.data() + begin, size);
    offset = begin + size;
  }
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(offset));
  if (ok && c.closing) return false;
  return ok;
}

bool TCPStoreServer::handle(int fd, Conn& c, const uint8_t* p, size_t n) {
  Reader in(p, n);
  const auto op = in.u8();
  const auto id = in.u32();
  if (!op || !id) return false;
  auto reply = [&](Status s) {
    Writer w;
    w.u8(s).u32(*id);
    return w;
  };
  if (c.rank < 0 && *op != kHello) return false;  // not one of ours
  switch (*op) {
    case kHello: {
      const auto magic = in.u32();
      const auto version = in.u32();
      const auto rank = in.u32();
      if (!magic || *magic != kMagic || !rank || !in.at_end()) return false;
      if (!version || *version != kVersion) {
        respond(fd, reply(kError).str("TCPStore protocol version mismatch: the server speaks version " +
                                      std::to_string(kVersion) + ", the client " +
                                      std::to_string(version ? *version : 0) + " (mixed zae builds?)")
                        .finish());
        c.closing = true;
        return true;
      }
      c.rank = static_cast<int>(static_cast<int32_t>(*rank));
      if (c.rank < 0) c.rank = 0x7fffffff;  // a client without a rank: never reported lost
      respond(fd, reply(kOk).finish());
      return true;
    }
    case kSet: {
      auto key = in.str();
      auto value = in.value();
      if (!key || !value || !in.at_end()) return false;
      data_[*key] = std::move(*value);
      respond(fd, reply(kOk).finish());
      answer_ready();
      return true;
    }
    case kGet:
    case kWait: {
      const auto timeout_ms = in.u32();
      std::vector<std::string> keys;
      if (!timeout_ms) return false;
      if (*op == kGet) {
        auto key = in.str();
        if (!key) return false;
        keys.push_back(std::move(*key));
      } else {
        auto ks = in.keys();
        if (!ks) return false;
        keys = std::move(*ks);
      }
      if (!in.at_end()) return false;
      if (all_set(keys)) {
        Writer w = reply(kOk);
        if (*op == kGet) w.value(data_.at(keys[0]));
        respond(fd, w.finish());
      } else {
        parked_.push_back(
            {fd, *id, *op == kGet, std::move(keys), Clock::now() + std::chrono::milliseconds(*timeout_ms)});
      }
      return true;
    }
    case kAdd: {
      auto key = in.str();
      const auto delta = in.i64();
      if (!key || !delta || !in.at_end()) return false;
      int64_t value = 0;
      auto it = data_.find(*key);
      if (it != data_.end() && !it->second.empty()) {
        try {
          value = parse_store_integer(*key, it->second);
        } catch (const zae::Error& e) {
          respond(fd, reply(kError).str(e.message()).finish());
          return true;
        }
      }
      value += *delta;
      const std::string text = std::to_string(value);
      data_[*key] = Bytes(text.begin(), text.end());
      respond(fd, reply(kOk).i64(value).finish());
      answer_ready();
      return true;
    }
    case kCheck: {
      auto keys = in.keys();
      if (!keys || !in.at_end()) return false;
      respond(fd, reply(kOk).u8(all_set(*keys) ? 1 : 0).finish());
      return true;
    }
    case kLost: {
      if (!in.at_end()) return false;
      Writer w = reply(kOk);
      w.u32(static_cast<uint32_t>(lost_.size()));
      for (int r : lost_) w.u32(static_cast<uint32_t>(r));
      respond(fd, w.finish());
      return true;
    }
    case kBye: {
      if (!in.at_end()) return false;
      c.bye = true;
      respond(fd, reply(kOk).finish());
      return true;
    }
    default:
      return false;
  }
}

void TCPStoreServer::respond(int fd, Bytes frame) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  c.out.insert(c.out.end(), frame.begin(), frame.end());
  flush(fd, c);
}

void TCPStoreServer::flush(int fd, Conn& c) {
  size_t sent = 0;
  while (sent < c.out.size()) {
    const ssize_t n = ::send(fd, c.out.data() + sent, c.out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // A broken connection: drop the output; the next poll reports the hang-up and closes it.
    sent = c.out.size();
  }
  c.out.erase(c.out.begin(), c.out.begin() + static_cast<std::ptrdiff_t>(sent));
}

void TCPStoreServer::close_conn(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  const Conn& c = it->second;
  if (c.rank >= 0 && c.rank != 0x7fffffff && !c.bye) lost_.insert(c.rank);
  parked_.remove_if([fd](const Parked& p) { return p.fd == fd; });
  ::close(fd);
  conns_.erase(it);
}

void TCPStoreServer::answer_ready() {
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (!all_set(it->keys)) {
      ++it;
      continue;
    }
    Writer w;
    w.u8(kOk).u32(it->request_id);
    if (it->is_get) w.value(data_.at(it->keys[0]));
    const int fd = it->fd;
    it = parked_.erase(it);
    respond(fd, w.finish());
  }
}

void TCPStoreServer::expire_parked(Clock::time_point now) {
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    Writer w;
    w.u8(kTimeout).u32(it->request_id).keys(missing(it->keys));
    const int fd = it->fd;
    it = parked_.erase(it);
    respond(fd, w.finish());
  }
}

bool TCPStoreServer::all_set(const std::vector<std::string>& keys) const {
  for (const std::string& k : keys)
    if (!data_.count(k)) return false;
  return true;
}

std::vector<std::string> TCPStoreServer::missing(const std::vector<std::string>& keys) const {
  std::vector<std::string> m;
  for (const std::string& k : keys)
    if (!data_.count(k)) m.push_back(k);
  return m;
}

}  // namespace zae::dist
