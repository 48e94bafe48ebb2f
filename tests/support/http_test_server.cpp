// HttpTestServer: one thread poll()s the listening socket, a wake-up pipe and every open
// connection. Each connection owns an input buffer (bytes not yet parsed) and an output
// buffer (bytes not yet written); complete requests are parsed from the front of the
// input, recorded, handed to the handler, and answered in order (HTTP/1.1 keep-alive,
// pipelining allowed).
// Invariants: all sockets are non-blocking and close-on-exec; writes use MSG_NOSIGNAL (a
// client that hung up is no SIGPIPE); a request is recorded before its handler runs, so a
// test can see it while a slow handler still holds the answer; the handler is called
// without any lock held; stop() wakes the thread through the pipe, joins it and closes
// every socket, so later connections are refused.
#include "support/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "engine/error.h"

namespace zae::test {

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = size_t(512) << 20;

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string render(const CannedResponse& r, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

enum class Parse { kIncomplete, kDone, kBad };

/// Decodes a chunked body starting at `pos`; on kDone, `end` is one past the trailers.
Parse parse_chunked(const std::string& in, size_t pos, std::string& body, size_t& end) {
  body.clear();
  for (;;) {
    const size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return in.size() - pos > 1024 ? Parse::kBad : Parse::kIncomplete;
    const std::string size_field = in.substr(pos, in.find_first_of(";\r", pos) - pos);
    size_t size = 0;
    if (size_field.empty()) return Parse::kBad;
    for (char c : trim(size_field)) {
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0 || size > (kMaxBodyBytes >> 4)) return Parse::kBad;
      size = size * 16 + static_cast<size_t>(d);
    }
    pos = eol + 2;
    if (size == 0) {  // trailers, then an empty line
      for (;;) {
        const size_t t = in.find("\r\n", pos);
        if (t == std::string::npos) return Parse::kIncomplete;
        if (t == pos) {
          end = t + 2;
          return Parse::kDone;
        }
        pos = t + 2;
      }
    }
    if (body.size() + size > kMaxBodyBytes) return Parse::kBad;
    if (in.size() < pos + size + 2) return Parse::kIncomplete;
    if (in.compare(pos + size, 2, "\r\n") != 0) return Parse::kBad;
    body.append(in, pos, size);
    pos += size + 2;
  }
}

struct Connection {
  int fd = -1;
  std::string in, out;
  bool continue_sent = false;  // "100 Continue" already answered for the pending request
  bool close_after_write = false;  // "Connection: close" or a malformed request
  bool eof = false;                // the peer has shut down its side
};

}  // namespace

std::string RecordedRequest::path() const { return target.substr(0, target.find('?')); }

std::string RecordedRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpTestServer::Impl {
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  Handler handler;
  std::vector<RecordedRequest> requests;
  int listen_fd = -1;
  int wake_pipe[2] = {-1, -1};
  int port = 0;
  bool stopped = false;
  std::thread thread;
  std::vector<Connection> conns;  // the server thread's alone

  void run();
  void accept_all();
  /// Reads what is there (setting c.eof at the end of the stream); false on an error.
  bool read_some(Connection& c);
  /// Parses and answers every complete request in c.in; a malformed one is answered 400
  /// and the connection closed after the answer.
  void serve(Connection& c);
  /// One request from the front of c.in: kDone (answered), kIncomplete or kBad.
  Parse serve_one(Connection& c);
  /// Writes what the socket takes; false on a write error.
  bool write_some(Connection& c);
  CannedResponse answer(const RecordedRequest& r);
};

HttpTestServer::HttpTestServer(Handler handler, int port) : impl_(std::make_unique<Impl>()) {
  ZAE_CHECK(port >= 0 && port <= 65535, "HttpTestServer: port ", port, " is out of range");
  impl_->handler = std::move(handler);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ZAE_CHECK(fd >= 0, "HttpTestServer: socket() failed: ", std::strerror(errno));
  impl_->listen_fd = fd;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    ZAE_FAIL("HttpTestServer: cannot listen on 127.0.0.1:", port, ": ", std::strerror(err));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  impl_->port = ntohs(addr.sin_port);
  if (::pipe2(impl_->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(fd);
    ZAE_FAIL("HttpTestServer: pipe2() failed: ", std::strerror(err));
  }
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

HttpTestServer::~HttpTestServer() { stop(); }

int HttpTestServer::port() const { return impl_->port; }

std::string HttpTestServer::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

void HttpTestServer::set_handler(Handler handler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->handler = std::move(handler);
}

std::vector<RecordedRequest> HttpTestServer::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->requests;
}

bool HttpTestServer::wait_for(const std::function<bool(const std::vector<RecordedRequest>&)>& pred,
                              std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return pred(impl_->requests); });
}

void HttpTestServer::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->wake_pipe[1], &byte, 1);
  if (impl_->thread.joinable()) impl_->thread.join();
  for (auto& c : impl_->conns) ::close(c.fd);
  impl_->conns.clear();
  ::close(impl_->listen_fd);
  ::close(impl_->wake_pipe[0]);
  ::close(impl_->wake_pipe[1]);
  impl_->listen_fd = impl_->wake_pipe[0] = impl_->wake_pipe[1] = -1;
  impl_->cv.notify_all();
}

void HttpTestServer::Impl::run() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_pipe[0], POLLIN, 0});
    fds.push_back({listen_fd, POLLIN, 0});
    for (auto& c : conns)
      fds.push_back({c.fd, static_cast<short>((c.eof ? 0 : POLLIN) | (c.out.empty() ? 0 : POLLOUT)), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;  // stop()
    // Connections first (their indices match fds), then new ones.
    std::vector<Connection> keep;
    keep.reserve(conns.size());
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short ev = fds[i + 2].revents;
      bool failed = false;
      if (!c.eof && (ev & (POLLIN | POLLHUP | POLLERR))) failed = !read_some(c);
      if (!failed) serve(c);
      if (!failed && !c.out.empty()) failed = !write_some(c);
      const bool done = failed || (c.out.empty() && (c.eof || c.close_after_write));
      if (done) {
        ::close(c.fd);
      } else {
        keep.push_back(std::move(c));
      }
    }
    conns.swap(keep);
    if (fds[1].revents & POLLIN) accept_all();
  }
}

void HttpTestServer::Impl::accept_all() {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: none left (other errors: try again on the next poll)
    Connection c;
    c.fd = fd;
    conns.push_back(std::move(c));
  }
}

bool HttpTestServer::Impl::read_some(Connection& c) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < sizeof buf) return true;
      continue;
    }
    if (n == 0) {  // peer closed its side: answer what is complete, then close
      c.eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool HttpTestServer::Impl::write_some(Connection& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

CannedResponse HttpTestServer::Impl::answer(const RecordedRequest& r) {
  Handler h;
  {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(r);
    h = handler;
  }
  cv.notify_all();
  if (!h) return CannedResponse{};
  try {
    return h(r);
  } catch (const std::exception& e) {
    return CannedResponse{500, std::string("handler threw: ") + e.what(), "text/plain"};
  } catch (...) {
    return CannedResponse{500, "handler threw", "text/plain"};
  }
}

void HttpTestServer::Impl::serve(Connection& c) {
  while (!c.close_after_write) {
    const Parse p = serve_one(c);
    if (p == Parse::kIncomplete) return;
    if (p == Parse::kBad) {
      c.in.clear();
      c.out += render(CannedResponse{400, "malformed request", "text/plain"}, false);
      c.close_after_write = true;
    }
  }
}

Parse HttpTestServer::Impl::serve_one(Connection& c) {
  const size_t head_end = c.in.find("\r\n\r\n");
  if (head_end == std::string::npos) return c.in.size() > kMaxHeaderBytes ? Parse::kBad : Parse::kIncomplete;
  RecordedRequest r;
  // Request line: METHOD SP target SP HTTP/1.x
  const size_t line_end = c.in.find("\r\n");
  const std::string line = c.in.substr(0, line_end);
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) return Parse::kBad;
  r.method = line.substr(0, sp1);
  r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const bool http10 = line.compare(sp2 + 1, 8, "HTTP/1.0") == 0;
  for (size_t pos = line_end + 2; pos < head_end + 2;) {
    const size_t eol = c.in.find("\r\n", pos);
    const std::string h = c.in.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) return Parse::kBad;
    std::string name = lower(h.substr(0, colon));
    std::string value = trim(h.substr(colon + 1));
    auto [it, fresh] = r.headers.emplace(name, value);
    if (!fresh) it->second += ", " + value;  // repeated header: one comma-joined value
  }
  const size_t body_start = head_end + 4;
  size_t consumed = body_start;
  const bool chunked = lower(r.header("transfer-encoding")).find("chunked") != std::string::npos;
  const bool expects_continue = lower(r.header("expect")) == "100-continue";
  if (chunked) {
    size_t end = 0;
    const Parse p = parse_chunked(c.in, body_start, r.body, end);
    if (p == Parse::kBad) return Parse::kBad;
    if (p == Parse::kIncomplete) {
      if (expects_continue && !c.continue_sent) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continue_sent = true;
      }
      return Parse::kIncomplete;
    }
    consumed = end;
  } else if (!r.header("content-length").empty()) {
    const std::string cl = r.header("content-length");
    size_t length = 0;
    for (char ch : cl) {
      if (ch < '0' || ch > '9' || length > kMaxBodyBytes) return Parse::kBad;
      length = length * 10 + static_cast<size_t>(ch - '0');
    }
    if (length > kMaxBodyBytes) return Parse::kBad;
    if (c.in.size() < body_start + length) {
      if (expects_continue && !c.continue_sent) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continue_sent = true;
      }
      return Parse::kIncomplete;
    }
    r.body = c.in.substr(body_start, length);
    consumed = body_start + length;
  }
  c.in.erase(0, consumed);
  c.continue_sent = false;
  const std::string connection = lower(r.header("connection"));
  const bool keep_alive = http10 ? connection == "keep-alive" : connection != "close";
  c.out += render(answer(r), keep_alive);
  if (!keep_alive) c.close_after_write = true;
  return Parse::kDone;
}

}  // namespace zae::test
