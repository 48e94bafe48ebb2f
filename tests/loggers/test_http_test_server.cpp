// HttpTestServer over raw sockets (what libcurl never sends by itself): several and
// pipelined requests on one connection, chunked bodies, Expect: 100-continue,
// Connection: close, malformed requests, a throwing handler, stop() and a restart on
// the same port. And HttpClient's keep-alive, against a one-connection server that
// would leave a second connection unanswered.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "io/http_client.h"
#include "support/http_test_server.h"

namespace zae::test {
namespace {

using std::chrono::milliseconds;

/// A connected client socket; -1 when the connection was refused.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
}

/// Reads until `pred(data)` holds, EOF, or 3 s pass.
std::string read_until(int fd, const std::function<bool(const std::string&)>& pred) {
  std::string data;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!pred(data) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

CannedResponse echo(const RecordedRequest& r) { return CannedResponse{200, r.method + ":" + r.body, "text/plain"}; }

TEST(HttpTestServer, SeveralAndPipelinedRequestsOnOneConnection) {
  HttpTestServer server(echo);
  const int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none");
  std::string got = read_until(fd, [](const std::string& d) { return d.find("POST:one") != std::string::npos; });
  EXPECT_NE(got.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Length: 8\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: keep-alive\r\n"), std::string::npos) << got;
  // Two more at once, the second split across writes.
  send_all(fd, "GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nContent-Le");
  std::this_thread::sleep_for(milliseconds(20));
  send_all(fd, "ngth: 3\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\ntwo");
  got = read_until(fd, [](const std::string& d) { return d.find("POST:two") != std::string::npos; });
  EXPECT_LT(got.find("GET:"), got.find("POST:two")) << got;
  ::close(fd);
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].method, "GET");
  EXPECT_EQ(reqs[1].target, "/b?q=1");
  EXPECT_EQ(reqs[1].path(), "/b");
  EXPECT_EQ(reqs[2].body, "two");
  EXPECT_EQ(reqs[2].header("x-multi"), "1, 2");
}

TEST(HttpTestServer, ChunkedBodiesAndExpectContinue) {
  HttpTestServer server(echo);
  const int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
  std::string got = read_until(fd, [](const std::string& d) { return d.find("\r\n\r\n") != std::string::npos; });
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd, "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n");
  got = read_until(fd, [](const std::string& d) { return d.find("POST:hello, world") != std::string::npos; });
  EXPECT_NE(got.find("POST:hello, world"), std::string::npos) << got;
  // Expect with a Content-Length body.
  send_all(fd, "POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  got = read_until(fd, [](const std::string& d) { return d.find("100 Continue") != std::string::npos; });
  EXPECT_NE(got.find("HTTP/1.1 100 Continue\r\n\r\n"), std::string::npos) << got;
  send_all(fd, "abcd");
  got = read_until(fd, [](const std::string& d) { return d.find("POST:abcd") != std::string::npos; });
  EXPECT_NE(got.find("POST:abcd"), std::string::npos) << got;
  ::close(fd);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0].body, "hello, world");
}

TEST(HttpTestServer, ConnectionCloseAndMalformedRequests) {
  HttpTestServer server(echo);
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  std::string got = read_until(fd, [](const std::string&) { return false; });  // until EOF
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("GET:"), std::string::npos) << got;
  ::close(fd);
  fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  send_all(fd, "this is not http\r\n\r\n");
  got = read_until(fd, [](const std::string&) { return false; });
  EXPECT_NE(got.find("HTTP/1.1 400 "), std::string::npos) << got;
  ::close(fd);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpTestServer, HandlerExceptionsAnswer500AndAreRecorded) {
  HttpTestServer server([](const RecordedRequest&) -> CannedResponse { throw std::runtime_error("boom"); });
  io::HttpClient client(std::chrono::seconds(5));
  const io::HttpResponse r = client.post(server.url() + "/x", "{}");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("boom"), std::string::npos) << r.body;
  EXPECT_EQ(server.requests().size(), 1u);
  server.set_handler([](const RecordedRequest&) { return CannedResponse{201, "made", "text/plain"}; });
  EXPECT_EQ(client.post(server.url() + "/x", "{}").status, 201);
}

TEST(HttpTestServer, WaitForSeesRequestsAndTimesOut) {
  HttpTestServer server(echo);
  std::thread poster([url = server.url()] {
    std::this_thread::sleep_for(milliseconds(30));
    io::HttpClient client(std::chrono::seconds(5));
    client.post(url + "/late", "x");
  });
  EXPECT_TRUE(server.wait_for([](const auto& v) { return !v.empty() && v[0].path() == "/late"; }, milliseconds(3000)));
  poster.join();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(server.wait_for([](const auto& v) { return v.size() == 2; }, milliseconds(100)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(100));
}

TEST(HttpTestServer, StopRefusesConnectionsAndTheSamePortCanBeReused) {
  auto server = std::make_unique<HttpTestServer>(echo);
  const int port = server->port();
  EXPECT_EQ(server->url(), "http://127.0.0.1:" + std::to_string(port));
  const int open_fd = connect_to(port);  // an idle keep-alive connection
  ASSERT_GE(open_fd, 0);
  server->stop();
  server->stop();  // idempotent
  EXPECT_EQ(read_until(open_fd, [](const std::string&) { return false; }), "");  // closed by stop
  ::close(open_fd);
  EXPECT_EQ(connect_to(port), -1);
  server = std::make_unique<HttpTestServer>(echo, port);
  const int fd = connect_to(port);
  ASSERT_GE(fd, 0);
  ::close(fd);
  // A port taken by a running server is a clear error.
  try {
    HttpTestServer second(echo, port);
    FAIL() << "a second server on port " << port << " started";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}

// HttpClient keeps its connection alive: this server accepts exactly one connection, so a
// client that opened a second one would get no answer and time out.
TEST(HttpClientKeepAlive, SeveralRequestsOverOneConnection) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  constexpr int kRequests = 4;
  int answered = 0;
  std::thread one_connection([&] {
    pollfd p{lfd, POLLIN, 0};
    if (::poll(&p, 1, 3000) <= 0) return;
    const int fd = ::accept(lfd, nullptr, nullptr);
    std::string in;
    for (int i = 0; i < kRequests; ++i) {
      in += read_until(fd, [&](const std::string& d) { return (in + d).find("\r\n\r\n") != std::string::npos; });
      const size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) break;
      in.erase(0, end + 4);  // GET requests: no body
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
      ++answered;
    }
    ::close(fd);
  });
  io::HttpClient client(milliseconds(2000));
  for (int i = 0; i < kRequests; ++i) {
    const io::HttpResponse r = client.get("http://127.0.0.1:" + std::to_string(port) + "/" + std::to_string(i));
    EXPECT_EQ(r.status, 200) << "request " << i << ": " << r.describe();
    EXPECT_EQ(r.body, "ok");
  }
  one_connection.join();
  ::close(lfd);
  EXPECT_EQ(answered, kRequests);
}

}  // namespace
}  // namespace zae::test
