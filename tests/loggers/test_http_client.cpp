// HttpClient against the local HttpTestServer: bodies and headers both ways (up to
// 1 MiB), status codes, transport failures (refused, timeout) as status 0 plus a text
// that never shows secret header values, keep-alive over several requests, and the
// base64 / basic_auth / url_encode vectors (RFC 4648 section 10, RFC 3986).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include "engine/error.h"
#include "io/http_client.h"
#include "support/http_test_server.h"

namespace zae::io {
namespace {

using std::chrono::milliseconds;
using test::CannedResponse;
using test::HttpTestServer;
using test::RecordedRequest;

/// Echoes the request: status from "?status=N" (default 200), body = the request body.
CannedResponse echo(const RecordedRequest& r) {
  CannedResponse c;
  const auto q = r.target.find("status=");
  if (q != std::string::npos) c.status = std::stoi(r.target.substr(q + 7));
  c.body = r.method + " " + r.path() + " " + r.body;
  c.content_type = "text/plain";
  return c;
}

TEST(HttpClient, GetRoundTripsHeadersAndBody) {
  HttpTestServer server(echo);
  HttpClient client(std::chrono::seconds(5));
  const HttpResponse r = client.get(server.url() + "/api/2.0/x?a=b%20c", {{"X-Custom", "v1"}, {"Accept", "text/plain"}});
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.body, "GET /api/2.0/x ");
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/api/2.0/x?a=b%20c");
  EXPECT_EQ(reqs[0].path(), "/api/2.0/x");
  EXPECT_EQ(reqs[0].header("x-custom"), "v1");
  EXPECT_EQ(reqs[0].header("accept"), "text/plain");
  EXPECT_EQ(reqs[0].header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(reqs[0].header("absent"), "");
  EXPECT_TRUE(reqs[0].body.empty());
}

TEST(HttpClient, PostDefaultsToJsonAndKeepsAGivenContentType) {
  HttpTestServer server(echo);
  HttpClient client(std::chrono::seconds(5));
  const std::string body = R"({"run":"abc","values":[1,2.5,"\u00e9"]})";
  HttpResponse r = client.post(server.url() + "/graphql", body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.body, "POST /graphql " + body);
  r = client.post(server.url() + "/files", "a=1", {{"content-type", "application/x-www-form-urlencoded"}});
  ASSERT_EQ(r.status, 200) << r.describe();
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].body, body);
  EXPECT_EQ(reqs[0].header("content-type"), "application/json");
  EXPECT_EQ(reqs[0].header("content-length"), std::to_string(body.size()));
  EXPECT_EQ(reqs[0].header("expect"), "");  // no 100-continue round trip
  EXPECT_EQ(reqs[1].header("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(reqs[1].body, "a=1");
}

TEST(HttpClient, OneMebibyteBodiesBothWays) {
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  HttpTestServer server([&](const RecordedRequest& r) {
    return CannedResponse{200, r.body == big ? big : std::string("mismatch"), "application/octet-stream"};
  });
  HttpClient client(std::chrono::seconds(10));
  const HttpResponse r = client.post(server.url() + "/upload", big);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.body.size(), big.size());
  EXPECT_TRUE(r.body == big);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].body.size(), big.size());
}

TEST(HttpClient, ReportsStatusCodes) {
  HttpTestServer server(echo);
  HttpClient client(std::chrono::seconds(5));
  for (int status : {200, 201, 404, 500, 503}) {
    const HttpResponse r = client.post(server.url() + "/x?status=" + std::to_string(status), "{}");
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.ok(), status < 300);
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.body, "POST /x {}");
  }
  const HttpResponse r = client.get(server.url() + "/x?status=500");
  EXPECT_EQ(r.describe(), "HTTP 500: GET /x ");
  HttpResponse long_body;
  long_body.status = 404;
  long_body.body = std::string(300, 'z');
  EXPECT_EQ(long_body.describe(), "HTTP 404: " + std::string(200, 'z'));
}

TEST(HttpClient, ConnectionRefusedIsStatusZeroWithAnError) {
  int port = 0;
  {
    HttpTestServer server(echo);
    port = server.port();
  }  // stopped: nobody listens there now
  HttpClient client(std::chrono::seconds(5));
  const auto t0 = std::chrono::steady_clock::now();
  const HttpResponse r = client.post("http://127.0.0.1:" + std::to_string(port) + "/x", "{}",
                                     {{"Authorization", "Bearer sekrit-token-123"}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.error.empty());
  EXPECT_NE(r.describe().find("connection failed: "), std::string::npos) << r.describe();
  EXPECT_EQ(r.describe().find("sekrit"), std::string::npos) << r.describe();
  EXPECT_EQ(r.error.find("sekrit"), std::string::npos) << r.error;
}

TEST(HttpClient, ServerThatNeverAnswersTimesOut) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  HttpTestServer server([released](const RecordedRequest&) {
    released.wait_for(std::chrono::seconds(5));  // the test releases it at once after the timeout
    return CannedResponse{};
  });
  HttpClient client(milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  const HttpResponse r = client.post(server.url() + "/slow", "{}", {{"Authorization", basic_auth("api", "sekrit-key")}});
  const auto took = std::chrono::steady_clock::now() - t0;
  release.set_value();
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(2500));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("imeout"), std::string::npos) << r.error;  // "Timeout was reached: ..."
  EXPECT_EQ(r.error.find(base64_encode("api:sekrit-key")), std::string::npos) << r.error;
  EXPECT_EQ(r.describe().find(base64_encode("api:sekrit-key")), std::string::npos) << r.describe();
  EXPECT_EQ(r.describe().find("sekrit"), std::string::npos) << r.describe();
  ASSERT_TRUE(server.wait_for([](const auto& v) { return v.size() == 1; }, milliseconds(2000)));
  EXPECT_EQ(server.requests()[0].header("authorization"), basic_auth("api", "sekrit-key"));

  // The same client works again once the server answers.
  client.set_timeout(std::chrono::seconds(5));
  const HttpResponse again = client.get(server.url() + "/fine");
  EXPECT_EQ(again.status, 200) << again.describe();
}

TEST(HttpClient, KeepAliveReusesOneConnection) {
  HttpTestServer server(echo);
  HttpClient client(std::chrono::seconds(5));
  for (int i = 0; i < 5; ++i) {
    const HttpResponse r = client.post(server.url() + "/n", std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(r.body, "POST /n " + std::to_string(i));
  }
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 5u);
  for (const auto& r : reqs) EXPECT_NE(r.header("connection"), "close");
}

TEST(HttpClient, ServerDownThenBackUpOnTheSamePort) {
  auto server = std::make_unique<HttpTestServer>(echo);
  const int port = server->port();
  const std::string url = server->url() + "/x";
  HttpClient client(std::chrono::seconds(5));
  EXPECT_EQ(client.post(url, "1").status, 200);
  server->stop();
  const HttpResponse down = client.post(url, "2");
  EXPECT_EQ(down.status, 0);
  EXPECT_FALSE(down.error.empty());
  server = std::make_unique<HttpTestServer>(echo, port);
  EXPECT_EQ(server->port(), port);
  const HttpResponse up = client.post(url, "3");
  EXPECT_EQ(up.status, 200) << up.describe();
  EXPECT_EQ(up.body, "POST /x 3");
}

TEST(HttpClient, InvalidHeaderIsAnErrorNotARequest) {
  HttpTestServer server(echo);
  HttpClient client(std::chrono::seconds(5));
  const HttpResponse r = client.post(server.url() + "/x", "{}", {{"Authorization", "Bearer abc\r\nX-Evil: 1"}});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("Authorization"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("abc"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("Evil"), std::string::npos) << r.error;
  EXPECT_TRUE(server.requests().empty());
}

TEST(HttpClient, RejectsNonPositiveTimeouts) {
  EXPECT_THROW(HttpClient(milliseconds(0)), zae::Error);
  HttpClient client(milliseconds(100));
  EXPECT_THROW(client.set_timeout(milliseconds(-1)), zae::Error);
}

TEST(HttpClient, MalformedUrlIsAnErrorNotAThrow) {
  HttpClient client(milliseconds(500));
  const HttpResponse r = client.get("not a url at all");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  const HttpResponse f = client.get("file:///etc/passwd");  // http(s) only
  EXPECT_EQ(f.status, 0);
  EXPECT_TRUE(f.body.empty());
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\x00\xff\xfe", 3)), "AP/+");
  EXPECT_EQ(base64_encode(std::string("\xfb\xff", 2)), "+/8=");
}

TEST(Base64, BasicAuth) {
  // RFC 7617 section 2's example.
  EXPECT_EQ(basic_auth("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_EQ(basic_auth("api", ""), "Basic YXBpOg==");
}

TEST(UrlEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(url_encode(""), "");
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(url_encode("a b&c=d/e?f#g"), "a%20b%26c%3Dd%2Fe%3Ff%23g");
  EXPECT_EQ(url_encode("100%+"), "100%25%2B");
  EXPECT_EQ(url_encode("\xc3\xa9"), "%C3%A9");  // UTF-8 bytes, upper-case hex
  EXPECT_EQ(url_encode(std::string("\x00\x7f", 2)), "%00%7F");
}

}  // namespace
}  // namespace zae::io
