// Upstream names resolved again and again, through a nameserver the test runs (resolver.nameservers
// → StubDns): every address a name gives is a server, addresses that come are used, addresses
// that go get no more requests. Two origins on 127.0.0.1 and 127.0.0.2, the same port.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;
using namespace std::chrono_literals;

namespace {

// Asks until `done(body)` holds for `in_a_row` answers in a row; false after 10 s.
template <class Done>
bool answered(std::uint16_t port, Done done, int in_a_row = 1) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    for (int row = 0; std::chrono::steady_clock::now() < until;) {
        const auto res = fetch(port, "/");
        row = res.result_int() == 200 && done(res.body()) ? row + 1 : 0;
        if (row >= in_a_row) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST_CASE("resolver: a name's addresses are its servers, followed as they change") {
    TestOrigin a(uncached("a"));
    TestOrigin b(uncached("b"), "127.0.0.2", a.port());
    StubDns dns;
    dns.set("origin.test", {"127.0.0.1"});
    auto config = proxy_config(a.port(), "resolver: {nameservers: [\"127.0.0.1:" + std::to_string(dns.port()) +
                                             "\"], interval: 200ms, timeout: 500ms}\n");
    config.replace(config.find("host: 127.0.0.1"), std::string("host: 127.0.0.1").size(), "host: origin.test");
    Daemon cachalot(config);

    // One address: every request goes there.
    REQUIRE(answered(cachalot.port(), [](const std::string& body) { return body == "a"; }, 5));
    CHECK(b.request_count() == 0);

    // A second address: a server of its own, taking its turn.
    dns.set("origin.test", {"127.0.0.1", "127.0.0.2"});
    REQUIRE(answered(cachalot.port(), [](const std::string& body) { return body == "b"; }));
    const auto a_before = a.request_count(), b_before = b.request_count();
    for (int i = 0; i < 20; ++i) REQUIRE(fetch(cachalot.port(), "/").result_int() == 200);
    CHECK(a.request_count() - a_before == 10);  // round robin over the two addresses
    CHECK(b.request_count() - b_before == 10);
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    const auto port = std::to_string(a.port());
    CHECK(metric_value(metrics, "cachalot_upstream_server_healthy{server=\"127.0.0.2:" + port + "\",upstream=\"origin\"}") == 1);

    // The first address gone: it gets nothing more.
    dns.set("origin.test", {"127.0.0.2"});
    REQUIRE(answered(cachalot.port(), [](const std::string& body) { return body == "b"; }, 10));
    const auto a_after = a.request_count();
    for (int i = 0; i < 10; ++i) CHECK(fetch(cachalot.port(), "/").body() == "b");
    CHECK(a.request_count() == a_after);
    const auto upstreams = fetch(cachalot.admin_port(), "/upstreams").body();
    CHECK(upstreams.find("\"server\":\"127.0.0.2:" + port + "\"") != std::string::npos);
    CHECK(upstreams.find("\"server\":\"127.0.0.1:" + port + "\"") == std::string::npos);
    CHECK(upstreams.find("\"host\":\"origin.test\"") != std::string::npos);
}

TEST_CASE("resolver: a name that stops resolving keeps its last addresses") {
    TestOrigin a(uncached("a"));
    StubDns dns;
    dns.set("origin.test", {"127.0.0.1"});
    auto config = proxy_config(a.port(), "resolver: {nameservers: [\"127.0.0.1:" + std::to_string(dns.port()) +
                                             "\"], interval: 100ms, timeout: 200ms}\n");
    config.replace(config.find("host: 127.0.0.1"), std::string("host: 127.0.0.1").size(), "host: origin.test");
    Daemon cachalot(config);
    REQUIRE(answered(cachalot.port(), [](const std::string& body) { return body == "a"; }));
    dns.set("origin.test", {});  // no address
    const auto seen = dns.queries();
    const auto until = std::chrono::steady_clock::now() + 10s;  // resolved again since
    while (dns.queries() < seen + 4 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
    CHECK(dns.queries() >= seen + 4);
    CHECK(fetch(cachalot.port(), "/").body() == "a");
    CHECK(cachalot.output().find("origin.test resolves to no address; its last addresses stay") != std::string::npos);
}
