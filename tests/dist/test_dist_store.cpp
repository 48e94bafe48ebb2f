// Tests of the stores: TCPStore (one server, several client threads, ports chosen by the
// OS), its failure modes (port in use, no server, server gone, silent peers, lost ranks),
// and FileStore (two instances on one file, atomic add, cleanup by the last user).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "dist/file_store.h"
#include "dist/tcp_store.h"
#include "dist/tcp_store_protocol.h"
#include "engine/error.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae::dist {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using zae::test::expect_throws_with;

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

/// A socket bound to 127.0.0.1 on a port the OS chose (listening when asked), closed on scope exit.
struct BoundSocket {
  int fd = -1;
  int port = 0;
  explicit BoundSocket(bool listening) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (listening) {
      EXPECT_EQ(::listen(fd, 16), 0);
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~BoundSocket() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

/// A raw connection to 127.0.0.1:port, for speaking the protocol by hand.
int raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{3, 0};  // a misbehaving server fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void raw_send(int fd, const Bytes& frame) {
  ASSERT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
}

/// Polls lost_ranks() until it holds `rank` or 3 s pass.
bool eventually_lost(Store& s, int rank) {
  const auto t0 = Clock::now();
  while (ms_since(t0) < 3000) {
    const auto lost = s.lost_ranks();
    if (std::find(lost.begin(), lost.end(), rank) != lost.end()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// TCPStore

TEST(TcpStore, ServerOnPortZeroServesSeveralClientThreads) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(server.host(), "127.0.0.1");
  server.set_string("from/0", "zero");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int r = 1; r <= 3; ++r) {
    threads.emplace_back([&, r] {
      try {
        TCPStore client("127.0.0.1", server.port(), r, false, 5s);
        client.set_string("from/" + std::to_string(r), "rank" + std::to_string(r));
        client.wait({"from/1", "from/2", "from/3"});
        for (int o = 1; o <= 3; ++o)
          if (client.get_string("from/" + std::to_string(o)) != "rank" + std::to_string(o)) ++failures;
        if (client.get_string("from/0") != "zero") ++failures;
        if (!client.check({"from/0", "from/1"}) || client.check({"from/0", "never"})) ++failures;
        client.add("count", r);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "rank " << r << ": " << e.what();
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server.get_string("count"), "6");  // add() stores decimal text
  EXPECT_EQ(server.add("count", -6), 0);
  EXPECT_TRUE(server.lost_ranks().empty());  // every client said goodbye
}

TEST(TcpStore, GetWaitsForAKeySetLaterByAnotherClient) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  TCPStore a("localhost", server.port(), 1, false, 5s);  // "localhost" resolves
  TCPStore b("127.0.0.1", server.port(), 2, false, 5s);
  const auto t0 = Clock::now();
  std::thread setter([&] {
    std::this_thread::sleep_for(150ms);
    b.set_string("late", "here");
  });
  EXPECT_EQ(a.get_string("late"), "here");
  EXPECT_GE(ms_since(t0), 100);
  setter.join();
}

TEST(TcpStore, ThreadsSharingOneClientDoNotBlockEachOther) {
  // One thread parks in get() on the object another thread then uses to set the key.
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  TCPStore shared("127.0.0.1", server.port(), 1, false, 3s);
  std::string got;
  std::thread getter([&] { got = shared.get_string("k"); });
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  shared.set_string("k", "v");
  EXPECT_LT(ms_since(t0), 1000);
  getter.join();
  EXPECT_EQ(got, "v");
  // Many threads on one object, interleaved requests.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string key = std::to_string(t * 1000 + i);
        shared.set_string(key, key);
        EXPECT_EQ(shared.get_string(key), key);
      }
    });
  for (auto& th : threads) th.join();
}

TEST(TcpStore, WaitAndGetTimeOutNamingTheMissingKey) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  TCPStore client("127.0.0.1", server.port(), 1, false, 300ms);
  client.set_string("present", "1");
  auto t0 = Clock::now();
  expect_throws_with([&] { client.wait({"present", "absent_key"}, 300ms); },
                     {"timed out", "absent_key", "300 ms", "127.0.0.1:" + std::to_string(server.port())});
  EXPECT_GE(ms_since(t0), 280);
  EXPECT_LT(ms_since(t0), 2000);
  // The message names only the keys still missing.
  try {
    client.wait({"present", "absent_key"}, 100ms);
  } catch (const zae::Error& e) {
    EXPECT_EQ(std::string(e.what()).find("present"), std::string::npos) << e.what();
  }
  t0 = Clock::now();
  expect_throws_with([&] { client.get("never_set"); }, {"timed out", "never_set"});
  EXPECT_LT(ms_since(t0), 2000);
  // The connection is still good after abandoned requests (late answers are discarded).
  client.set_string("after", "ok");
  EXPECT_EQ(client.get_string("after"), "ok");
  EXPECT_TRUE(client.check({"present", "after"}));
}

TEST(TcpStore, AddIsAtomicUnderConcurrentIncrements) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  std::vector<std::vector<int64_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      TCPStore client("127.0.0.1", server.port(), t + 1, false, 5s);
      for (int i = 0; i < 200; ++i) seen[t].push_back(client.add("counter", 1));
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(server.add("counter", 0), 800);
  std::vector<int64_t> all;
  for (const auto& s : seen) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) ASSERT_EQ(all[i], i + 1);  // each value once
}

TEST(TcpStore, AddOnANonIntegerKeyIsAnError) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  server.set_string("text", "hello");
  expect_throws_with([&] { server.add("text", 1); }, {"'text'", "integer"});
  EXPECT_EQ(server.add("n", 5), 5);  // the connection survives a refused request
}

TEST(TcpStore, LargeValuesRoundTrip) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  TCPStore client("127.0.0.1", server.port(), 1, false, 5s);
  Bytes big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 31 + 7);
  client.set("big", big);
  EXPECT_EQ(server.get("big"), big);
  client.set("empty", {});
  EXPECT_TRUE(server.get("empty").empty());
}

TEST(TcpStore, PortInUseIsAClearError) {
  BoundSocket taken(true);
  const std::string where = "127.0.0.1:" + std::to_string(taken.port);
  expect_throws_with([&] { TCPStore("127.0.0.1", taken.port, 0, true, 1s); },
                     {"address already in use", where, "MASTER_PORT", "--master-port", "tcp://"});
}

TEST(TcpStore, ClientWithoutServerTimesOutWithAClearError) {
  BoundSocket probe(false);
  const int port = probe.port;
  probe.close();  // nobody listens there now
  const auto t0 = Clock::now();
  expect_throws_with([&] { TCPStore("127.0.0.1", port, 3, false, 300ms); },
                     {"127.0.0.1:" + std::to_string(port), "rank 3", "300 ms", "Connection refused",
                      "Is rank 0 running", "MASTER_ADDR/MASTER_PORT"});
  EXPECT_GE(ms_since(t0), 280);
  EXPECT_LT(ms_since(t0), 1500);
}

TEST(TcpStore, ClientRetriesUntilTheServerComesUp) {
  BoundSocket probe(false);
  const int port = probe.port;
  probe.close();
  std::unique_ptr<TCPStore> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(200ms);
    server = std::make_unique<TCPStore>("127.0.0.1", port, 0, true, 5s);
    server->set_string("up", "1");
  });
  TCPStore client("127.0.0.1", port, 1, false, 5s);
  EXPECT_EQ(client.get_string("up"), "1");
  starter.join();
}

TEST(TcpStore, APeerThatNeverAnswersTimesOut) {
  BoundSocket silent(true);  // accepts connections (backlog) but never speaks
  const auto t0 = Clock::now();
  expect_throws_with([&] { TCPStore("127.0.0.1", silent.port, 1, false, 300ms); }, {"no answer", "hello"});
  EXPECT_LT(ms_since(t0), 2500);
}

TEST(TcpStore, ServerGoneIsAClearErrorNotAHang) {
  auto server = std::make_unique<TCPStore>("127.0.0.1", 0, 0, true, 5s);
  TCPStore client("127.0.0.1", server->port(), 1, false, 10s);
  TCPStore parked("127.0.0.1", server->port(), 2, false, 10s);
  client.set_string("k", "v");
  std::string parked_error;
  std::thread waiter([&] {
    try {
      parked.get("never");
    } catch (const zae::Error& e) {
      parked_error = e.what();
    }
  });
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  server.reset();  // rank 0 goes away
  waiter.join();
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_NE(parked_error.find("rank 0 is gone"), std::string::npos) << parked_error;
  expect_throws_with([&] { client.get("k"); }, {"closed the connection", "rank 0 is gone", "rank 1"});
  expect_throws_with([&] { client.set_string("k", "v"); }, {"rank 0 is gone"});
  EXPECT_LT(ms_since(t0), 3000);
  EXPECT_TRUE(client.lost_ranks().empty());  // never throws
}

TEST(TcpStore, ARankThatVanishesWithoutGoodbyeIsLost) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  {
    TCPStore polite("127.0.0.1", server.port(), 2, false, 5s);
  }
  // Rank 5 speaks its hello by hand, then drops the connection without goodbye.
  const int fd = raw_connect(server.port());
  tcp_wire::Writer hello;
  hello.u8(tcp_wire::kHello).u32(1).u32(tcp_wire::kMagic).u32(tcp_wire::kVersion).u32(5);
  raw_send(fd, hello.finish());
  uint8_t answer[64];
  EXPECT_GT(::recv(fd, answer, sizeof answer, 0), 0);  // the server took the hello
  ::close(fd);
  EXPECT_TRUE(eventually_lost(server, 5));
  const auto lost = server.lost_ranks();
  EXPECT_EQ(lost, std::vector<int>{5});  // not the polite rank 2
  TCPStore other("127.0.0.1", server.port(), 1, false, 5s);
  EXPECT_EQ(other.lost_ranks(), std::vector<int>{5});  // every client can ask
}

TEST(TcpStore, GarbageFromAForeignPeerDoesNotHurtTheServer) {
  TCPStore server("127.0.0.1", 0, 0, true, 5s);
  const int fd = raw_connect(server.port());
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
  uint8_t buf[16];
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0);  // the server hung up on it
  ::close(fd);
  server.set_string("still", "fine");
  TCPStore client("127.0.0.1", server.port(), 1, false, 5s);
  EXPECT_EQ(client.get_string("still"), "fine");
  EXPECT_TRUE(server.lost_ranks().empty());  // it never said it was a rank
}

TEST(TcpStore, BadArgumentsAreErrors) {
  expect_throws_with([] { TCPStore("127.0.0.1", 70000, 0, true, 1s); }, {"70000"});
  expect_throws_with([] { TCPStore("127.0.0.1", 0, 1, false, 1s); }, {"port 0"});
  expect_throws_with([] { TCPStore("no-such-host.invalid", 29999, 1, false, 200ms); },
                     {"no-such-host.invalid:29999", "resolve"});
}

// ---------------------------------------------------------------------------------------------
// FileStore

class FileStoreTest : public zae::test::TempDirTest {};

TEST_F(FileStoreTest, SetGetAddCheckWait) {
  FileStore s(path("store"), 1, 2s);
  s.set_string("a", "1");
  s.set("bin", Bytes{0, 1, 2, 255});
  EXPECT_EQ(s.get_string("a"), "1");
  EXPECT_EQ(s.get("bin"), (Bytes{0, 1, 2, 255}));
  s.set_string("a", "2");  // overwrite
  EXPECT_EQ(s.get_string("a"), "2");
  EXPECT_EQ(s.add("n", 3), 3);
  EXPECT_EQ(s.add("n", -1), 2);
  EXPECT_EQ(s.get_string("n"), "2");
  EXPECT_TRUE(s.check({"a", "n"}));
  EXPECT_FALSE(s.check({"a", "zzz"}));
  s.wait({"a", "bin"}, 100ms);
  s.set_string("text", "hello");
  expect_throws_with([&] { s.add("text", 1); }, {"'text'", "integer"});
  EXPECT_EQ(s.get_string("text"), "hello");  // a refused add changes nothing
}

TEST_F(FileStoreTest, TwoInstancesOnOneFileSeeEachOther) {
  FileStore a(path("store"), 2, 3s);
  FileStore b(path("store"), 2, 3s);
  a.set_string("x", "from a");
  EXPECT_EQ(b.get_string("x"), "from a");
  const auto t0 = Clock::now();
  std::thread setter([&] {
    std::this_thread::sleep_for(150ms);
    b.set_string("late", "from b");
  });
  EXPECT_EQ(a.get_string("late"), "from b");
  EXPECT_GE(ms_since(t0), 100);
  setter.join();
  EXPECT_EQ(a.add("n", 1), 1);
  EXPECT_EQ(b.add("n", 1), 2);
}

TEST_F(FileStoreTest, WaitTimeoutNamesTheMissingKeyAndPath) {
  FileStore s(path("store"), 1, 300ms);
  s.set_string("present", "1");
  const auto t0 = Clock::now();
  expect_throws_with([&] { s.wait({"present", "absent_key"}, 300ms); }, {"timed out", "absent_key", path("store")});
  EXPECT_GE(ms_since(t0), 280);
  EXPECT_LT(ms_since(t0), 2000);
  expect_throws_with([&] { s.get("never_set"); }, {"timed out", "never_set"});
}

TEST_F(FileStoreTest, AddIsAtomicAcrossInstances) {
  std::vector<std::vector<int64_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      FileStore s(path("store"), 5, 5s);
      for (int i = 0; i < 200; ++i) seen[t].push_back(s.add("counter", 1));
    });
  for (auto& th : threads) th.join();
  FileStore s(path("store"), 5, 5s);
  EXPECT_EQ(s.add("counter", 0), 800);
  std::vector<int64_t> all;
  for (const auto& v : seen) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) ASSERT_EQ(all[i], i + 1);
}

TEST_F(FileStoreTest, TheLastUserRemovesTheFile) {
  const std::string p = path("store");
  auto a = std::make_unique<FileStore>(p, 3, 1s);
  auto b = std::make_unique<FileStore>(p, 3, 1s);
  auto c = std::make_unique<FileStore>(p, 3, 1s);
  a->set_string("k", "v");
  EXPECT_TRUE(std::filesystem::exists(p));
  a.reset();
  b.reset();
  EXPECT_TRUE(std::filesystem::exists(p));  // one user left
  EXPECT_EQ(c->get_string("k"), "v");
  c.reset();
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST_F(FileStoreTest, AFileThatIsNotAStoreIsAnError) {
  const std::string p = path("not_a_store");
  std::ofstream(p) << "hello, world";
  expect_throws_with([&] { FileStore(p, 1, 1s); }, {p, "bad magic", "offset 0"});
  // A torn record: a valid header followed by half a record.
  const std::string q = path("torn");
  {
    FileStore s(q, 2, 1s);
    s.set_string("key", "value");
  }
  std::filesystem::resize_file(q, std::filesystem::file_size(q) - 2);
  expect_throws_with([&] { FileStore(q, 2, 1s); }, {q, "torn record", "offset 25"});
}

TEST_F(FileStoreTest, BadArgumentsAreErrors) {
  expect_throws_with([&] { FileStore(path("no_such_dir/store"), 1, 1s); }, {"no_such_dir/store", "cannot open"});
  expect_throws_with([&] { FileStore(path("store"), 0, 1s); }, {"world_size", "0"});
}

}  // namespace
}  // namespace zae::dist
