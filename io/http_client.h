// HttpClient: blocking HTTP(S) requests over libcurl, for the web loggers' background
// threads (W&B, MLflow). One client per thread (a curl easy handle is not thread-safe).
// Invariants: never throws for network trouble (the Response says what happened:
// status 0 and `error` for a transport failure); every request has a total timeout;
// no header value (Authorization included) ever appears in error texts or in describe();
// no proxy or environment variable changes behaviour silently except the standard ones
// libcurl honours (https_proxy, no_proxy).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zae::io {

struct HttpResponse {
  long status = 0;     ///< HTTP status; 0 when no response arrived (see error)
  std::string body;
  std::string error;   ///< transport error text (connection refused, timeout, ...); empty otherwise
  bool ok() const { return status >= 200 && status < 300; }
  /// "HTTP 500: <first 200 bytes of body>" or "connection failed: <error>".
  std::string describe() const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpClient {
 public:
  explicit HttpClient(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse get(const std::string& url, const HttpHeaders& headers = {});
  HttpResponse post(const std::string& url, const std::string& body, const HttpHeaders& headers = {});
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// "Basic " + base64(user + ":" + password).
std::string basic_auth(const std::string& user, const std::string& password);
/// RFC 4648 base64 with padding.
std::string base64_encode(const std::string& bytes);
/// Percent-encodes everything but unreserved characters (RFC 3986), for query strings.
std::string url_encode(const std::string& s);

}  // namespace zae::io
