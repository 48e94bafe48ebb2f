// HttpTestServer: a small HTTP/1.1 server on 127.0.0.1 for tests of the web loggers.
// It records every request and answers with what the test's handler returns; the test
// can stop it (a server that is down) and start another on the same port (back up).
// Invariants: one background thread; requests are handled one at a time in arrival
// order; Content-Length and chunked request bodies are read whole; the handler runs on
// the server thread (it must be thread-safe w.r.t. the test); never throws from the thread
// (a handler exception answers 500 and is recorded).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zae::test {

struct RecordedRequest {
  std::string method;                          ///< "GET", "POST"
  std::string target;                          ///< path and query, e.g. "/graphql" or "/api/2.0/mlflow/...?a=b"
  std::map<std::string, std::string> headers;  ///< names lowercased
  std::string body;
  std::string path() const;                    ///< target without the query
  std::string header(const std::string& lower_name) const;  ///< "" when absent
};

struct CannedResponse {
  int status = 200;
  std::string body = "{}";
  std::string content_type = "application/json";
};

class HttpTestServer {
 public:
  using Handler = std::function<CannedResponse(const RecordedRequest&)>;
  /// Listens on 127.0.0.1:`port` (0: any free port).
  explicit HttpTestServer(Handler handler, int port = 0);
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const;
  /// "http://127.0.0.1:<port>"
  std::string url() const;
  void set_handler(Handler handler);
  /// Every request so far, in order.
  std::vector<RecordedRequest> requests() const;
  /// Waits until pred(requests()) holds; false after `timeout`.
  bool wait_for(const std::function<bool(const std::vector<RecordedRequest>&)>& pred,
                std::chrono::milliseconds timeout) const;
  /// Closes the listening socket and every connection (connections are refused after).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zae::test
