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

TEST_CASE("a streaming upload growing over max_body_bytes gets 413, and the origin never gets it whole") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallLimits));
    Client client(cachalot.port());
    // Expect: 100-continue: the body streams, so the limit is met on the way to the origin.
    client.send_raw("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    CHECK(client.read_response().result_int() == 100);
    client.send_raw("40\r\n" + std::string(64, 'a') + "\r\n1\r\nb\r\n0\r\n\r\n");
    auto res = client.read_response();
    CHECK(res.result_int() == 413);
    CHECK(client.closed_by_peer());
    CHECK(origin.request_count() == 0);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_upstream_errors_total{reason="bad_response",upstream="origin"})",
                       0) == 0);
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

// client.max_buffered_bytes: body bytes held in memory for all clients together.
namespace {
const std::string kSmallBudget =
    "client:\n"
    "  max_body_bytes: 1MiB\n"
    "  max_buffered_bytes: 1000\n";
}  // namespace

TEST_CASE("a request body that arrives whole but would pass max_buffered_bytes gets 503 and is not forwarded") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), kSmallBudget));
    SECTION("with a Content-Length") {
        auto res = answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" +
                                                         std::string(1001, 'a'));
        CHECK(res.result_int() == 503);
    }
    SECTION("chunked") {
        auto res = answer_and_close(cachalot.port(), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                     "3e8\r\n" + std::string(1000, 'a') + "\r\n1\r\nb\r\n0\r\n\r\n");
        CHECK(res.result_int() == 503);
    }
    CHECK(origin.request_count() == 0);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_buffer_refusals_total{body="request"})", 1) == 1);
    CHECK(await_metric(cachalot.admin_port(), "cachalot_buffered_bytes", 0) == 0);
}

TEST_CASE("a slow upload streams to the origin and holds none of max_buffered_bytes: others go on meanwhile") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = std::to_string(r.body.size())}; });
    Daemon cachalot(proxy_config(origin.port(), kSmallBudget));
    Client slow(cachalot.port());
    // Expect: 100-continue: nothing of the body comes with the head, so it streams.
    slow.send_raw("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    CHECK(slow.read_response().result_int() == 100);  // the origin exchange wants the body
    slow.send_raw(std::string(100, 'a'));
    CHECK(fetch(cachalot.port(), "/b", "POST", {}, std::string(300, 'b')).body() == "300");
    CHECK(await_metric(cachalot.admin_port(), "cachalot_buffered_bytes", 0) == 0);
    slow.send_raw(std::string(4900, 'a'));
    auto done = slow.read_response();
    CHECK(done.result_int() == 200);
    CHECK(done.body() == "5000");
}

TEST_CASE("a whole response body that would pass max_buffered_bytes while it waits for its client gets 503") {
    TestOrigin origin([](const OriginRequest& r) {
        if (r.target == "/chunked")
            return Reply{.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "3e8\r\n" + std::string(1000, 'c') + "\r\n1\r\nc\r\n0\r\n\r\n"};
        return Reply{.body = std::string(1001, 'r')};
    });
    Daemon cachalot(proxy_config(origin.port(), kSmallBudget));
    for (const char* target : {"/length", "/chunked"}) {
        INFO(target);
        auto res = fetch(cachalot.port(), target);
        CHECK(res.result_int() == 503);
        CHECK(res["Retry-After"] == "1");
    }
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_buffer_refusals_total{body="response"})", 2) == 2);
    CHECK(await_metric(cachalot.admin_port(), "cachalot_buffered_bytes", 0) == 0);
}

TEST_CASE("a response body far larger than max_buffered_bytes streams through, and is not kept for the store") {
    // 2 MiB cannot arrive in the first read (kStreamWindow): it streams, holding a window, never the budget.
    std::string big(2u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
    TestOrigin origin([&](const OriginRequest& r) {
        Reply reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = big};
        if (r.target == "/chunked") reply.headers.push_back({"Transfer-Encoding", "chunked"});
        return reply;
    });
    // The L1 takes bodies far larger than the budget: the budget is what stops keeping them.
    auto config = proxy_config(origin.port(), kSmallBudget);
    config.replace(config.find("size: 8MiB, max_object_size: 256KiB"), 35, "size: 64MiB, max_object_size: 3MiB");
    Daemon cachalot(config);
    for (const char* target : {"/length", "/chunked"}) {
        INFO(target);
        auto res = fetch(cachalot.port(), target);
        CHECK(res.result_int() == 200);
        CHECK(res.body() == big);
        CHECK(fetch(cachalot.port(), target).body() == big);
    }
    CHECK(origin.request_count() == 4);  // nothing was stored
    CHECK(await_metric(cachalot.admin_port(), "cachalot_buffered_bytes", 0) == 0);
}

TEST_CASE("connections over client.max_connections are closed at accept, and admitted again when one closes") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), "client:\n  max_connections: 2\n"));
    auto first = std::make_unique<Client>(cachalot.port());
    Client second(cachalot.port());
    CHECK(first->request("GET", "/").result_int() == 200);
    CHECK(second.request("GET", "/").result_int() == 200);

    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Closed at once: no response, whether the write itself still went through or was reset.
    auto answer = [&] {
        Client client(cachalot.port());
        try {
            client.send_raw(request);
        } catch (const std::exception&) {
        }
        return client.read_until_close();
    };
    CHECK(answer().empty());
    CHECK(await_metric(cachalot.admin_port(), "cachalot_connections_refused_total", 1) == 1);

    first.reset();
    // The closed session ends asynchronously: retry until a new connection is admitted.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool admitted = false;
    while (!admitted && std::chrono::steady_clock::now() < deadline) {
        admitted = answer().starts_with("HTTP/1.1 200");
        if (!admitted) std::this_thread::sleep_for(20ms);
    }
    CHECK(admitted);
}
