// Request coalescing through the real binary: one origin fetch per key in flight per node,
// across worker threads; waiters get that response the moment it arrives, or go on their own
// when it is not theirs to share.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <latch>
#include <set>
#include <thread>

using namespace cachalot::test;

namespace {

struct Result {
    unsigned status = 0;
    std::string body;
    std::string cache_status;
};

// `n` clients connected first, then sending together.
std::vector<Result> concurrent_gets(std::uint16_t port, int n, const std::function<Headers(int)>& headers = {}) {
    std::vector<Result> results(n);
    std::latch connected(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            try {
                Client c(port, 20s);
                connected.arrive_and_wait();
                auto res = c.request("GET", "/cold", headers ? headers(i) : Headers{});
                results[i] = {res.result_int(), res.body(), std::string(res["Cache-Status"])};
            } catch (const std::exception& e) {
                results[i].body = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();
    return results;
}

}  // namespace

TEST_CASE("a stampede on a cold key costs the origin one request and every client gets 200", "[coalescing]") {
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}},
                     .body = "response " + std::to_string(++counter),
                     .delay = 300ms};
    });
    Daemon cachalot(proxy_config(origin.port(), "", "", 2));  // two workers: coalescing spans threads
    auto results = concurrent_gets(cachalot.port(), 300);
    std::size_t collapsed = 0;
    for (const auto& r : results) {
        REQUIRE(r.status == 200);
        CHECK(r.body == "response 1");
        if (r.cache_status.find("collapsed") != std::string::npos) ++collapsed;
    }
    CHECK(origin.request_count() == 1);
    CHECK(collapsed > 0);
    CHECK(await_metric(cachalot.admin_port(), "cachalot_coalesced_requests_total{route=\"default\"}", collapsed) ==
          collapsed);
    CHECK(metric_value(fetch(cachalot.admin_port(), "/metrics").body(),
                       "cachalot_origin_fetches_total{route=\"default\"}") == 1);
}

TEST_CASE("waiters on a response that is not stored go to the origin on their own", "[coalescing]") {
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "private, max-age=60"}},
                     .body = "for you alone " + std::to_string(++counter),
                     .delay = 300ms};
    });
    Daemon cachalot(proxy_config(origin.port(), "", "", 2));
    auto results = concurrent_gets(cachalot.port(), 10);
    std::set<std::string> bodies;
    for (const auto& r : results) {
        CHECK(r.status == 200);
        bodies.insert(r.body);
    }
    CHECK(bodies.size() == 10);  // nobody got someone else's private response
    CHECK(origin.request_count() == 10);
}

TEST_CASE("a client that disconnects while its fetch is in flight does not cancel the others", "[coalescing]") {
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}},
                     .body = "response " + std::to_string(++counter),
                     .delay = 1s};  // the others join while it is in flight
    });
    Daemon cachalot(proxy_config(origin.port(), "", "", 2));
    {
        // The first request becomes the fetcher; its client leaves once the fetch is at the origin.
        Client leaver(cachalot.port());
        leaver.send_raw("GET /cold HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (origin.request_count() == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(5ms);
        REQUIRE(origin.request_count() == 1);
    }
    auto results = concurrent_gets(cachalot.port(), 8, [](int) { return Headers{{"Host", "x"}}; });
    for (const auto& r : results) {
        CHECK(r.status == 200);
        CHECK(r.body == "response 1");
    }
    CHECK(origin.request_count() == 1);
}
