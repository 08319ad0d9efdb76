// What the client sees when the origin fails, and how dead pooled connections are handled.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

TEST_CASE("an unreachable origin gets 502") {
    auto closed_port = free_port();  // nothing listens there
    Daemon cachalot(proxy_config(closed_port));
    auto res = fetch(cachalot.port(), "/");
    CHECK(res.result_int() == 502);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_upstream_errors_total{reason="connect",upstream="origin"})", 1) == 1);
}

TEST_CASE("an origin answering garbage gets 502") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.raw = std::string("this is not HTTP\r\n\r\n")}; });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/").result_int() == 502);
}

TEST_CASE("an origin closing without an answer gets 502") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.close_without_answer = true}; });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/", "POST", {}, "x").result_int() == 502);
}

TEST_CASE("an origin slower than read_timeout gets 504") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.body = "late", .delay = 1500ms}; });
    Daemon cachalot(proxy_config(origin.port(), "", "    read_timeout: 300ms\n"));
    auto res = fetch(cachalot.port(), "/");
    CHECK(res.result_int() == 504);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_upstream_errors_total{reason="timeout",upstream="origin"})", 1) == 1);
}

TEST_CASE("the proxy keeps serving after an origin failure") {
    std::atomic<int> n{0};
    TestOrigin origin([&](const OriginRequest&) {
        return ++n == 1 ? Reply{.raw = std::string("garbage")} : Reply{.body = "fine"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/").result_int() == 502);
    CHECK(fetch(cachalot.port(), "/").body() == "fine");
}

namespace {

// An origin that keeps connections open but silently drops each one's second request: what a
// keep-alive connection closed by the origin's idle timeout looks like to the proxy when the
// close races the next request.
Reply drop_second_request_on_each_connection(const OriginRequest& r) {
    if (r.index_on_connection == 2) return Reply{.close_without_answer = true};
    return Reply{.body = "from connection " + std::to_string(r.connection)};
}

}  // namespace

TEST_CASE("an idempotent request on a dead pooled connection is retried once on a new one") {
    TestOrigin origin(drop_second_request_on_each_connection);
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/a").body() == "from connection 1");
    auto res = fetch(cachalot.port(), "/b");  // goes on connection 1, which dies; retried on connection 2
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "from connection 2");
    CHECK(origin.connections() == 2);
}

TEST_CASE("a non-idempotent request on a dead pooled connection is not retried") {
    TestOrigin origin(drop_second_request_on_each_connection);
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/a").result_int() == 200);
    auto res = fetch(cachalot.port(), "/b", "POST", {}, "once");
    CHECK(res.result_int() == 502);
    CHECK(origin.request_count() == 2);  // the POST reached the origin once, never twice
}

TEST_CASE("a pooled connection the origin closed is not used") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.body = "ok", .keep_alive = false}; });
    Daemon cachalot(proxy_config(origin.port()));
    for (int i = 0; i < 3; ++i) CHECK(fetch(cachalot.port(), "/").result_int() == 200);
    CHECK(origin.connections() == 3);
}
