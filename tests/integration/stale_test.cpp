// Serving stale through the real binary: stale-if-error (origin 5xx, unreachable or too slow),
// grace, and TTL jitter. Stale-while-revalidate is tested with a hand-moved clock in
// tests/unit/server/pipeline_test.cpp.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

using namespace cachalot::test;

namespace {

bool has(const Response& r, const std::string& text) {
    return std::string(r["Cache-Status"]).find(text) != std::string::npos;
}

// A response becomes stale after max-age=1: wait until the stored copy is older than that.
void let_it_go_stale() { std::this_thread::sleep_for(2100ms); }

}  // namespace

TEST_CASE("stale-if-error serves the stored response when the origin fails, within its window only", "[stale]") {
    std::atomic<int> mode{0};  // 0: fine, 1: 503, 2: too slow
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        if (mode == 1) return Reply{.status = 503, .body = "down"};
        Reply r{.headers = {{"Cache-Control", "max-age=1, stale-if-error=3"}},
                .body = "response " + std::to_string(++counter)};
        if (mode == 2) r.delay = 2s;
        return r;
    });
    Daemon cachalot(proxy_config(origin.port(), "", "    read_timeout: 300ms\n"));
    CHECK(fetch(cachalot.port(), "/sie").body() == "response 1");
    let_it_go_stale();

    mode = 1;
    auto on_503 = fetch(cachalot.port(), "/sie");
    CHECK(on_503.result_int() == 200);
    CHECK(on_503.body() == "response 1");
    CHECK(has(on_503, "fwd-status=503"));
    CHECK(has(on_503, "detail=stale-if-error"));

    mode = 2;
    auto on_timeout = fetch(cachalot.port(), "/sie");
    CHECK(on_timeout.result_int() == 200);
    CHECK(on_timeout.body() == "response 1");
    CHECK(has(on_timeout, "detail=stale-if-error"));

    origin.stop();  // the port now refuses connections
    auto on_refused = fetch(cachalot.port(), "/sie");
    CHECK(on_refused.result_int() == 200);
    CHECK(on_refused.body() == "response 1");

    // Past max-age=1 + stale-if-error=3 even counted in whole seconds: at least 5.9 s after the
    // response was stored, its age is at least 5, its staleness at least 4.
    std::this_thread::sleep_for(3500ms);
    auto after = fetch(cachalot.port(), "/sie");
    CHECK(after.result_int() == 502);
    CHECK(has(after, "origin-unavailable"));
    CHECK(await_metric(cachalot.admin_port(), "cachalot_stale_served_total{reason=\"stale-if-error\",route=\"default\"}",
                       3) == 3);
}

TEST_CASE("stale-if-error from the request, and from the route, when the response says nothing", "[stale]") {
    std::atomic<bool> down{false};
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        if (down) return Reply{.status = 500, .body = "broken"};
        return Reply{.headers = {{"Cache-Control", "max-age=1"}}, .body = "response " + std::to_string(++counter)};
    });
    SECTION("no window anywhere: the error goes through") {
        Daemon cachalot(proxy_config(origin.port()));
        fetch(cachalot.port(), "/r");
        let_it_go_stale();
        down = true;
        CHECK(fetch(cachalot.port(), "/r").result_int() == 500);
        CHECK(fetch(cachalot.port(), "/r", "GET", {{"Cache-Control", "stale-if-error=60"}}).body() == "response 1");
    }
    SECTION("the route's default") {
        Daemon cachalot(with_route_cache(proxy_config(origin.port()), "{stale_if_error: 60s}"));
        fetch(cachalot.port(), "/r");
        let_it_go_stale();
        down = true;
        auto res = fetch(cachalot.port(), "/r");
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "response 1");
    }
}

TEST_CASE("grace serves a stored response while the origin is down, whatever its directives", "[stale]") {
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=1, must-revalidate"}},
                     .body = "response " + std::to_string(++counter)};
    });
    SECTION("with grace") {
        Daemon cachalot(with_route_cache(proxy_config(origin.port()), "{grace: 60s}"));
        fetch(cachalot.port(), "/g");
        let_it_go_stale();
        origin.stop();
        auto res = fetch(cachalot.port(), "/g");
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "response 1");
        CHECK(has(res, "detail=grace"));
        CHECK(await_metric(cachalot.admin_port(), "cachalot_stale_served_total{reason=\"grace\",route=\"default\"}",
                           1) == 1);
    }
    SECTION("without grace, must-revalidate is obeyed") {
        Daemon cachalot(with_route_cache(proxy_config(origin.port()), "{stale_if_error: 60s}"));
        fetch(cachalot.port(), "/g");
        let_it_go_stale();
        origin.stop();
        CHECK(fetch(cachalot.port(), "/g").result_int() == 502);
    }
}

TEST_CASE("ttl_jitter spreads the lifetimes of entries stored together", "[stale]") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.headers = {{"Cache-Control", "max-age=1000"}}}; });
    auto ttl_of = [](const Response& r) {
        std::string s(r["Cache-Status"]);
        auto at = s.find("ttl=");
        return at == std::string::npos ? -1 : std::stoi(s.substr(at + 4));
    };
    SECTION("with jitter") {
        Daemon cachalot(proxy_config(origin.port(), "  ttl_jitter: 20\n"));
        std::set<int> ttls;
        for (int i = 0; i < 20; ++i) {
            const int ttl = ttl_of(fetch(cachalot.port(), "/j" + std::to_string(i)));
            CHECK(ttl >= 800);
            CHECK(ttl <= 1200);
            ttls.insert(ttl);
        }
        CHECK(ttls.size() > 5);
    }
    SECTION("without") {
        Daemon cachalot(proxy_config(origin.port()));
        for (int i = 0; i < 5; ++i) CHECK(ttl_of(fetch(cachalot.port(), "/j" + std::to_string(i))) == 1000);
    }
}
