// Serving stale through the real binary: stale-while-revalidate (one background revalidation,
// the client never waits for it), stale-if-error (origin 5xx, unreachable or too slow), grace,
// and TTL jitter.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

using namespace cachalot::test;

namespace {

// Holds the origin's answers until the test opens it (a test never relies on timing to prove
// that a client did not wait for the origin).
class Gate {
public:
    void close() {
        std::lock_guard l(m_);
        open_ = false;
    }
    void open() {
        {
            std::lock_guard l(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock l(m_);
        cv_.wait_for(l, 20s, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = true;
};

bool has(const Response& r, const std::string& text) {
    return std::string(r["Cache-Status"]).find(text) != std::string::npos;
}

// A response becomes stale after max-age=1: wait until the stored copy is older than that.
void let_it_go_stale() { std::this_thread::sleep_for(2100ms); }

}  // namespace

TEST_CASE("stale-while-revalidate serves the stale response at once and revalidates once in the background",
          "[stale]") {
    Gate gate;
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest& r) {
        const int n = ++counter;
        if (n > 1) gate.wait();
        Reply reply{.headers = {{"Cache-Control", "max-age=1, stale-while-revalidate=60"}, {"ETag", "\"v1\""}},
                    .body = "response " + std::to_string(n)};
        if (r.header("If-None-Match") == "\"v1\"") {
            reply.status = 304;  // still current, and now fresh for a minute
            reply.headers = {{"Cache-Control", "max-age=60"}, {"ETag", "\"v1\""}};
            reply.body.clear();
        }
        return reply;
    });
    Daemon cachalot(proxy_config(origin.port(), "", "", 2));
    CHECK(fetch(cachalot.port(), "/swr").body() == "response 1");
    let_it_go_stale();

    gate.close();  // the revalidation will hang at the origin until the gate opens
    for (int i = 0; i < 10; ++i) {
        auto res = fetch(cachalot.port(), "/swr");
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "response 1");
        CHECK(has(res, "detail=stale-while-revalidate"));
    }
    // Ten stale answers while the origin is held: exactly one revalidation is under way.
    CHECK(origin.request_count() == 2);
    CHECK(origin.last_request().header("If-None-Match") == "\"v1\"");  // conditional: validators were stored
    gate.open();
    CHECK(await_metric(cachalot.admin_port(), "cachalot_cache_requests_total{result=\"revalidated\",route=\"default\"}",
                       1) == 1);
    auto after = fetch(cachalot.port(), "/swr");
    CHECK(after.body() == "response 1");  // the 304 kept the stored body, now fresh again
    CHECK(has(after, "cachalot; hit"));
    CHECK_FALSE(has(after, "stale"));
    CHECK(origin.request_count() == 2);
    auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_background_revalidations_total{route=\"default\"}") == 1);
    CHECK(metric_value(metrics, "cachalot_stale_served_total{reason=\"stale-while-revalidate\",route=\"default\"}") ==
          10);
}

TEST_CASE("a route's stale_while_revalidate applies to responses that set none", "[stale]") {
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=1"}}, .body = "response " + std::to_string(++counter)};
    });
    SECTION("with the route default") {
        Daemon cachalot(with_route_cache(proxy_config(origin.port()), "{stale_while_revalidate: 30s}"));
        fetch(cachalot.port(), "/x");
        let_it_go_stale();
        auto res = fetch(cachalot.port(), "/x");
        CHECK(res.body() == "response 1");
        CHECK(has(res, "detail=stale-while-revalidate"));
    }
    SECTION("without it, a stale response waits for the origin") {
        Daemon cachalot(proxy_config(origin.port()));
        fetch(cachalot.port(), "/x");
        let_it_go_stale();
        auto res = fetch(cachalot.port(), "/x");
        CHECK(res.body() == "response 2");
        CHECK(has(res, "fwd=stale"));
    }
}

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
