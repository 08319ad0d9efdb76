// Several servers per upstream, over the wire: weighted round robin, least outstanding, passive
// ejection and readmission, connect failures retried on another server for GET and never for
// POST, and every server down (503, or a stored response where stale-if-error allows it).

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <set>
#include <future>
#include <thread>

using namespace cachalot::test;
using namespace std::chrono_literals;

namespace {

// Sends requests until `done()` or the deadline; false at the deadline.
template <class Done>
bool keep_asking(std::uint16_t port, Done done, std::chrono::seconds deadline = 10s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        fetch(port, "/poll");
        if (done()) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("weighted round robin: each server gets its weight's share") {
    TestOrigin a(uncached("a")), b(uncached("b")), c(uncached("c"));
    Daemon cachalot(with_servers(proxy_config(a.port()), {{a.port(), 3}, {b.port(), 1}, {c.port(), 1}}));
    Client client(cachalot.port());
    for (int i = 0; i < 50; ++i) REQUIRE(client.request("GET", "/").result_int() == 200);
    CHECK(a.request_count() == 30);
    CHECK(b.request_count() == 10);
    CHECK(c.request_count() == 10);
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_upstream_server_requests_total{server=\"127.0.0.1:" +
                                    std::to_string(a.port()) + "\",upstream=\"origin\"}") == 30);
}

TEST_CASE("consistent hashing: a URL always reaches the same server, and URLs are spread over the servers") {
    TestOrigin a(uncached("a")), b(uncached("b"));
    Daemon cachalot(with_servers(proxy_config(a.port(), "", "    balance: consistent_hash\n"), {{a.port(), 1}, {b.port(), 1}}));
    Client client(cachalot.port());
    std::map<std::string, std::set<std::string>> servers_of;  // URL → the servers that answered it
    for (int round = 0; round < 3; ++round)
        for (int i = 0; i < 20; ++i) {
            const auto target = "/item/" + std::to_string(i);
            const auto res = client.request("GET", target);
            REQUIRE(res.result_int() == 200);
            servers_of[target].insert(res.body());
        }
    for (const auto& [target, servers] : servers_of) CHECK(servers.size() == 1);
    CHECK(a.request_count() > 0);
    CHECK(b.request_count() > 0);
    CHECK(a.request_count() + b.request_count() == 60);
}

TEST_CASE("least outstanding: requests go to the idle server while the other is busy") {
    Gate gate;
    auto slow_or_fast = [&](const OriginRequest& r) {
        if (r.target == "/slow") gate.wait();
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "ok"};
    };
    TestOrigin a(slow_or_fast), b(slow_or_fast);
    Daemon cachalot(with_servers(proxy_config(a.port(), "", "    balance: least_outstanding\n"), {{a.port(), 1}, {b.port(), 1}}));
    auto slow = std::async(std::launch::async, [&] { return fetch(cachalot.port(), "/slow").result_int(); });
    const auto until = std::chrono::steady_clock::now() + 10s;  // the slow request has reached a server
    while (a.request_count() + b.request_count() == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(5ms);
    REQUIRE(a.request_count() + b.request_count() == 1);
    TestOrigin& busy = a.request_count() == 1 ? a : b;
    TestOrigin& idle = a.request_count() == 1 ? b : a;
    for (int i = 0; i < 10; ++i) REQUIRE(fetch(cachalot.port(), "/fast").result_int() == 200);
    CHECK(idle.request_count() == 10);
    CHECK(busy.request_count() == 1);
    gate.open();
    CHECK(slow.get() == 200);
}

TEST_CASE("passive ejection: a server failing in a row gets nothing for eject_for, then comes back") {
    std::atomic<bool> failing{true};
    TestOrigin good(uncached("good"));
    TestOrigin bad([&](const OriginRequest&) {
        return Reply{.status = failing ? 500u : 200u, .headers = {{"Cache-Control", "no-store"}}, .body = "bad"};
    });
    const auto eject_for = GENERATE(std::string("30s"), std::string("300ms"));
    INFO("eject_for " << eject_for);
    Daemon cachalot(with_servers(proxy_config(good.port(), "", "    eject_after: 2\n    eject_for: " + eject_for + "\n"),
                                 {{good.port(), 1}, {bad.port(), 1}}));
    Client client(cachalot.port());
    for (int i = 0; i < 4; ++i) client.request("GET", "/");  // round robin: two each, the bad ones 500
    REQUIRE(bad.request_count() == 2);
    const std::string server = "{server=\"127.0.0.1:" + std::to_string(bad.port()) + "\",upstream=\"origin\"}";
    auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_upstream_server_ejections_total" + server) == 1);
    if (eject_for == "30s") {
        CHECK(metric_value(metrics, "cachalot_upstream_server_healthy" + server) == 0);
        for (int i = 0; i < 20; ++i) CHECK(client.request("GET", "/").body() == "good");
        CHECK(bad.request_count() == 2);
    } else {
        failing = false;  // it recovers; once eject_for has passed it gets requests again
        REQUIRE(keep_asking(cachalot.port(), [&] { return bad.request_count() > 2; }));
        metrics = fetch(cachalot.admin_port(), "/metrics").body();
        CHECK(metric_value(metrics, "cachalot_upstream_server_healthy" + server) == 1);
    }
}

TEST_CASE("a server that cannot be reached: GET goes to another server, POST does not") {
    TestOrigin live(uncached("live"));
    const auto dead = free_port();  // nothing listens there
    Daemon cachalot(with_servers(proxy_config(live.port(), "", "    eject_after: 0\n"), {{live.port(), 1}, {dead, 1}}));
    for (int i = 0; i < 10; ++i) CHECK(fetch(cachalot.port(), "/").body() == "live");  // half of them picked the dead one
    CHECK(live.request_count() == 10);
    int refused = 0;
    for (int i = 0; i < 2; ++i) refused += fetch(cachalot.port(), "/", "POST", {}, "x").result_int() == 502;
    CHECK(refused == 1);  // the POST that picked the dead server was not sent again
    CHECK(live.request_count() == 11);
}

TEST_CASE("every server down: 503 at once, or a stored response that stale-if-error allows") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=1, stale-if-error=600"}}, .body = "stored " + r.target};
    });
    const auto dead = free_port();
    Daemon cachalot(with_servers(proxy_config(origin.port(), "", "    eject_after: 1\n    eject_for: 60s\n"),
                                 {{origin.port(), 1}, {dead, 1}}));
    CHECK(fetch(cachalot.port(), "/doc").body() == "stored /doc");  // the first pick: the live server
    origin.stop();
    // Once /doc is stale, its revalidation finds both servers down (and ejects them): the stored
    // response stands in.
    std::string status;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until && status.find("stale-if-error") == std::string::npos) {
        auto res = fetch(cachalot.port(), "/doc");
        status = std::string(res["Cache-Status"]);
        if (status.find("stale-if-error") != std::string::npos) CHECK(res.body() == "stored /doc");
    }
    CHECK_THAT(status, Catch::Contains("detail=stale-if-error"));
    auto none = fetch(cachalot.port(), "/never-stored");
    CHECK(none.result_int() == 503);
    CHECK_THAT(none.body(), Catch::Contains("every server of this upstream is failing"));
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_upstream_errors_total{reason=\"unavailable\",upstream=\"origin\"}") >= 1);
}

TEST_CASE("max_in_flight: past the cap a request gets 503 at once, and nothing is sent") {
    Gate gate;
    TestOrigin origin([&](const OriginRequest& r) {
        if (r.target == "/slow") gate.wait();
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "ok"};
    });
    Daemon cachalot(proxy_config(origin.port(), "", "    max_in_flight: 1\n"));
    auto slow = std::async(std::launch::async, [&] { return fetch(cachalot.port(), "/slow").result_int(); });
    const auto until = std::chrono::steady_clock::now() + 10s;  // the slow request is at the origin
    while (origin.request_count() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
    REQUIRE(origin.request_count() == 1);
    auto refused = fetch(cachalot.port(), "/other");
    CHECK(refused.result_int() == 503);
    CHECK_THAT(refused.body(), Catch::Contains("too many requests in flight to this upstream"));
    CHECK(origin.request_count() == 1);
    auto upstreams = fetch(cachalot.admin_port(), "/upstreams");
    CHECK(upstreams["Content-Type"] == "application/json");
    CHECK_THAT(upstreams.body(), Catch::Contains("\"outstanding\":1"));
    CHECK_THAT(upstreams.body(), Catch::Contains("\"max_in_flight\":1"));
    gate.open();
    CHECK(slow.get() == 200);
    CHECK(fetch(cachalot.port(), "/other").result_int() == 200);  // room again
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_upstream_errors_total{reason=\"busy\",upstream=\"origin\"}") == 1);
}

TEST_CASE("GET /upstreams shows each server's state: weight, health, ejection") {
    TestOrigin good(uncached("good"));
    const auto dead = free_port();
    Daemon cachalot(with_servers(proxy_config(good.port(), "", "    eject_after: 1\n    eject_for: 60s\n"),
                                 {{good.port(), 2}, {dead, 1}}));
    for (int i = 0; i < 3; ++i) fetch(cachalot.port(), "/");  // the dead server is picked once, and ejected
    const auto body = fetch(cachalot.admin_port(), "/upstreams").body();
    const auto good_at = body.find("\"server\":\"127.0.0.1:" + std::to_string(good.port()) + "\"");
    const auto dead_at = body.find("\"server\":\"127.0.0.1:" + std::to_string(dead) + "\"");
    REQUIRE(good_at != std::string::npos);
    REQUIRE(dead_at != std::string::npos);
    const auto good_part = body.substr(good_at, dead_at > good_at ? dead_at - good_at : std::string::npos);
    const auto dead_part = body.substr(dead_at);
    CHECK_THAT(good_part, Catch::Contains("\"weight\":2") && Catch::Contains("\"healthy\":true"));
    CHECK_THAT(dead_part, Catch::Contains("\"healthy\":false"));
    CHECK_THAT(body, Catch::Contains("\"name\":\"origin\"") && Catch::Contains("\"balance\":\"round_robin\""));
}

TEST_CASE("active health checks take a server out after failed checks and bring it back after passing ones") {
    std::atomic<bool> sick{false};
    TestOrigin good(uncached("good"));
    TestOrigin checked([&](const OriginRequest& r) {
        if (r.target == "/healthz") return Reply{.status = sick ? 503u : 200u, .body = "check"};
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "checked"};
    });
    Daemon cachalot(with_servers(
        proxy_config(good.port(), "",
                     "    health_check: {path: /healthz, interval: 50ms, timeout: 1s, healthy_after: 2, unhealthy_after: 2}\n"),
        {{good.port(), 1}, {checked.port(), 1}}));
    const std::string server = "127.0.0.1:" + std::to_string(checked.port());
    // Waits until /upstreams says the checked server is (not) healthy; false at the deadline.
    auto wait_for = [&](bool healthy) {
        const auto want = "\"server\":\"" + server + "\",\"host\":\"127.0.0.1\",\"weight\":1,\"healthy\":" + (healthy ? "true" : "false");
        const auto until = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < until) {
            if (fetch(cachalot.admin_port(), "/upstreams").body().find(want) != std::string::npos) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    };
    sick = true;
    REQUIRE(wait_for(false));
    auto served_by_checked = [&] {
        int n = 0;
        for (int i = 0; i < 10; ++i) n += fetch(cachalot.port(), "/").body() == "checked";
        return n;
    };
    CHECK(served_by_checked() == 0);  // out while its checks fail
    sick = false;
    REQUIRE(wait_for(true));
    CHECK(served_by_checked() == 5);  // back in turn
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_upstream_health_checks_total{result=\"fail\",server=\"" + server +
                                    "\",upstream=\"origin\"}") >= 2);
    CHECK(metric_value(metrics, "cachalot_upstream_health_checks_total{result=\"pass\",server=\"" + server +
                                    "\",upstream=\"origin\"}") >= 2);
}
