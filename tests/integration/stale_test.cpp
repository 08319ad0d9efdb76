// Serving stale through the real binary: a stored response answers for an origin that is down
// or too slow, and TTL jitter. The windows (stale-while-revalidate, stale-if-error, grace) are
// tested with a hand-moved clock in tests/unit/server/pipeline_test.cpp.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <set>

using namespace cachalot::test;

namespace {

bool has(const Response& r, const std::string& text) {
    return std::string(r["Cache-Status"]).find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("a stored response answers for an origin that refuses connections or is slower than read_timeout",
          "[stale]") {
    // Through real sockets; the windows themselves are tested in tests/unit/server/pipeline_test.cpp.
    // The client's no-cache sends every request to the origin at once: no waiting for staleness.
    std::atomic<bool> slow{false};
    TestOrigin origin([&](const OriginRequest&) {
        Reply r{.headers = {{"Cache-Control", "max-age=600"}}, .body = "stored"};
        if (slow) r.delay = 3s;
        return r;
    });
    Daemon cachalot(with_route_cache(proxy_config(origin.port(), "", "    read_timeout: 300ms\n"),
                                     "{stale_if_error: 60s}"));
    CHECK(fetch(cachalot.port(), "/sie").body() == "stored");
    const Headers revalidate{{"Cache-Control", "no-cache"}};

    slow = true;
    auto on_timeout = fetch(cachalot.port(), "/sie", "GET", revalidate);
    CHECK(on_timeout.result_int() == 200);
    CHECK(on_timeout.body() == "stored");
    CHECK(has(on_timeout, "fwd=request; detail=stale-if-error"));

    origin.stop();  // the port now refuses connections
    auto on_refused = fetch(cachalot.port(), "/sie", "GET", revalidate);
    CHECK(on_refused.result_int() == 200);
    CHECK(on_refused.body() == "stored");
    CHECK(await_metric(cachalot.admin_port(), "cachalot_stale_served_total{reason=\"stale-if-error\",route=\"default\"}",
                       2) == 2);
}

TEST_CASE("an origin that cannot be reached at all is stood in for by a stored response, by default for 10 s",
          "[stale]") {
    std::atomic<bool> fail{false};
    TestOrigin origin([&](const OriginRequest& r) {
        Reply reply{.headers = {{"Cache-Control", r.target == "/strict" ? "max-age=600, must-revalidate" : "max-age=600"}},
                    .body = "stored"};
        if (fail) reply = Reply{.status = 500, .body = "broken"};
        return reply;
    });
    Daemon cachalot(proxy_config(origin.port()));  // no stale windows configured
    CHECK(fetch(cachalot.port(), "/d").body() == "stored");
    CHECK(fetch(cachalot.port(), "/strict").body() == "stored");
    // min-fresh makes the stored response unusable as it is: the request goes to the origin.
    const Headers ask{{"Cache-Control", "min-fresh=3600"}};

    fail = true;  // reached, and it answers 500: that goes through (stale-if-error would be the opt-in)
    CHECK(fetch(cachalot.port(), "/d", "GET", ask).result_int() == 500);

    origin.stop();  // the port now refuses connections
    auto stood_in = fetch(cachalot.port(), "/d", "GET", ask);
    CHECK(stood_in.result_int() == 200);
    CHECK(stood_in.body() == "stored");
    CHECK(has(stood_in, "detail=disconnected"));
    CHECK(fetch(cachalot.port(), "/strict", "GET", ask).result_int() == 502);  // must-revalidate forbids it
    CHECK(await_metric(cachalot.admin_port(), "cachalot_stale_served_total{reason=\"disconnected\",route=\"default\"}",
                       1) == 1);
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
