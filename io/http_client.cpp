// HttpClient over libcurl: one easy handle per client, reset before every request so
// its connection cache (keep-alive), DNS cache and TLS sessions carry over.
// Invariants: curl_global_init runs exactly once per process (std::call_once, before
// any handle exists; never cleaned up, as other threads may still use libcurl); no
// request runs without CURLOPT_TIMEOUT_MS; CURLOPT_NOSIGNAL is always set (the client
// runs on background threads); transport errors come back as status 0 plus the text
// of CURLOPT_ERRORBUFFER (libcurl never puts request header values there), so
// Authorization and other secrets never reach `error` or describe(); POST never follows
// redirects (a body and credentials are not re-sent to another place); GET follows at
// most 5 http(s) redirects, and libcurl sends custom headers only to the original host.
#include "io/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "engine/error.h"

namespace zae::io {

namespace {

/// Initializes libcurl once per process; throws when that fails (in every client's
/// constructor, not just the first one's).
void global_init_once() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  ZAE_CHECK(rc == CURLE_OK, "curl_global_init failed: ", curl_easy_strerror(rc));
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

bool iequals(const std::string& a, const char* b) {
  const size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// A header name must be an RFC 7230 token, a value must not break the header line.
/// Returns "" or the reason (naming the header, never showing its value).
std::string check_header(const std::pair<std::string, std::string>& h) {
  if (h.first.empty()) return "empty header name";
  for (unsigned char c : h.first)
    if (c <= 32 || c >= 127 || c == ':') return "invalid character in header name '" + h.first + "'";
  for (unsigned char c : h.second)
    if (c == '\r' || c == '\n' || c == 0) return "header '" + h.first + "' has a CR, LF or NUL in its value";
  return "";
}

/// Owns a curl_slist.
struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  bool add(const std::string& line) {
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (!next) return false;
    list = next;
    return true;
  }
};

}  // namespace

std::string HttpResponse::describe() const {
  if (status == 0) return "connection failed: " + (error.empty() ? std::string("no response") : error);
  std::string s = "HTTP " + std::to_string(status);
  if (!body.empty()) s += ": " + body.substr(0, 200);
  if (!error.empty()) s += " (" + error + ")";
  return s;
}

struct HttpClient::Impl {
  CURL* curl = nullptr;
  std::chrono::milliseconds timeout;
  char errbuf[CURL_ERROR_SIZE];

  HttpResponse perform(bool post, const std::string& url, const std::string* body, const HttpHeaders& headers);
};

HttpClient::HttpClient(std::chrono::milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  ZAE_CHECK(timeout.count() > 0, "HttpClient: the timeout must be positive, got ", timeout.count(), " ms");
  global_init_once();
  impl_->timeout = timeout;
  impl_->curl = curl_easy_init();
  ZAE_CHECK(impl_->curl != nullptr, "HttpClient: curl_easy_init failed");
}

HttpClient::~HttpClient() {
  if (impl_ && impl_->curl) curl_easy_cleanup(impl_->curl);
}

void HttpClient::set_timeout(std::chrono::milliseconds timeout) {
  ZAE_CHECK(timeout.count() > 0, "HttpClient: the timeout must be positive, got ", timeout.count(), " ms");
  impl_->timeout = timeout;
}

HttpResponse HttpClient::get(const std::string& url, const HttpHeaders& headers) {
  return impl_->perform(false, url, nullptr, headers);
}

HttpResponse HttpClient::post(const std::string& url, const std::string& body, const HttpHeaders& headers) {
  return impl_->perform(true, url, &body, headers);
}

HttpResponse HttpClient::Impl::perform(bool post, const std::string& url, const std::string* body,
                                       const HttpHeaders& headers) {
  HttpResponse r;
  HeaderList list;
  bool has_content_type = false;
  for (const auto& h : headers) {
    r.error = check_header(h);
    if (!r.error.empty()) return r;
    has_content_type = has_content_type || iequals(h.first, "content-type");
    // "Name;" is libcurl's spelling of a header with an empty value ("Name:" removes it).
    const std::string line = h.second.empty() ? h.first + ";" : h.first + ": " + h.second;
    if (!list.add(line)) {
      r.error = "out of memory building the request headers";
      return r;
    }
  }
  bool ok = true;
  if (post && !has_content_type) ok = list.add("Content-Type: application/json");
  // No "Expect: 100-continue" round trip (a server that ignores it would cost a second).
  if (post) ok = ok && list.add("Expect:");
  if (!ok) {
    r.error = "out of memory building the request headers";
    return r;
  }

  curl_easy_reset(curl);  // keeps live connections, DNS cache and TLS sessions
  errbuf[0] = '\0';
  const long total_ms = static_cast<long>(timeout.count());
  const long connect_ms = std::min<long>(total_ms, 10000);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85: the _STR spellings
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "zae-engine");
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list.list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  if (post) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  }

  const CURLcode rc = curl_easy_perform(curl);
  // Nothing may point into this call's locals once it returns (the handle outlives it).
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (rc != CURLE_OK) {
    // A response cut short (timeout mid-body) is no response: status 0, never ok().
    r.status = 0;
    r.error = curl_easy_strerror(rc);
    if (errbuf[0] != '\0' && r.error != errbuf) r.error += std::string(": ") + errbuf;
    return r;
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  r.status = status;
  return r;
}

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                       uint32_t(uint8_t(bytes[i + 2]));
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  return "Basic " + base64_encode(user + ":" + password);
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (unreserved || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace zae::io
