// Limits, timeouts and malformed input: each gets its status code and a clean close.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

namespace {

const std::string kSmallLimits =
    "client:\n"
    "  max_header_bytes: 1KiB\n"
    "  max_body_bytes: 64\n"
    "  header_timeout: 500ms\n"
    "  body_timeout: 500ms\n"
    "  idle_timeout: 700ms\n"
    "  lingering_timeout: 200ms\n";

// Sends `raw` on a new connection and returns the response, after checking the server closed.
Response answer_and_close(std::uint16_t port, const std::string& raw) {
    Client client(port);
    client.send_raw(raw);
    auto res = client.read_response();
    CHECK(res["Connection"] == "close");
    CHECK(client.closed_by_peer());
    return res;
}

}  // namespace

TEST_CASE("a request head over max_header_bytes gets 431 and the connection closes") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    auto res = answer_and_close(cachalot.port(),
                                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    CHECK(res.result_int() == 431);
    CHECK(origin.request_count() == 0);
}

TEST_CASE("a Content-Length over max_body_bytes gets 413 before the body is read") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    auto res = answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n");
    CHECK(res.result_int() == 413);
    CHECK(origin.request_count() == 0);
}

TEST_CASE("a chunked body growing over max_body_bytes gets 413") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    auto res = answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                 "40\r\n" + std::string(64, 'a') + "\r\n1\r\nb\r\n0\r\n\r\n");
    CHECK(res.result_int() == 413);
    CHECK(origin.request_count() == 0);
}

TEST_CASE("a body at exactly max_body_bytes is accepted") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = std::to_string(r.body.size())}; });
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    CHECK(fetch(cachalot.port(), "/", "POST", {}, std::string(64, 'z')).body() == "64");
}

TEST_CASE("a request head that stops arriving gets 408 after header_timeout") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    auto res = answer_and_close(cachalot.port(), "GET / HTTP/1.1\r\nHost: x\r\n");
    CHECK(res.result_int() == 408);
}

TEST_CASE("a body that stops arriving gets 408 after body_timeout") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    auto res = answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    CHECK(res.result_int() == 408);
    CHECK(origin.request_count() == 0);
}

TEST_CASE("an idle keep-alive connection is closed quietly after idle_timeout") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    Client client(cachalot.port());
    CHECK(client.request("GET", "/").result_int() == 200);
    CHECK(client.read_until_close().empty());  // closed without a response
}

// Malformed and ambiguous requests, one row each: tests/integration/hostile_test.cpp.

TEST_CASE("rejected requests are counted by status") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    answer_and_close(cachalot.port(), "GARBAGE\r\n\r\n");
    answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_rejected_requests_total{status="400"})", 1) == 1);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_rejected_requests_total{status="413"})", 1) == 1);
}
