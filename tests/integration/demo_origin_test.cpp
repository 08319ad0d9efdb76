// The quick start's demo origin: it must start, stop and survive like a real server, since the
// README and the benchmarks put it behind Cachalot.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace cachalot::test;

namespace {
std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
}  // namespace

TEST_CASE("the demo origin exits 0 on SIGTERM with idle and unanswered connections open") {
    DemoOrigin demo;
    Client idle(demo.port());
    CHECK(idle.request("GET", "/1k").result_int() == 200);  // now an idle keep-alive connection
    Client waiting(demo.port());
    waiting.send_raw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    demo.process().signal(SIGTERM);
    CHECK(demo.process().wait(10s) == 0);
}

TEST_CASE("the demo origin reports a port in use or a bad argument and exits, without aborting") {
    TestOrigin taken;
    const auto dir = temp_dir();
    ChildProcess in_use(CACHALOT_DEMO_ORIGIN, {std::to_string(taken.port())}, dir + "/in_use.log");
    CHECK(in_use.wait(10s) == 1);
    CHECK(read_all(dir + "/in_use.log").find("in use") != std::string::npos);
    ChildProcess bad(CACHALOT_DEMO_ORIGIN, {"eighty"}, dir + "/bad.log");
    CHECK(bad.wait(10s) == 2);
    CHECK(read_all(dir + "/bad.log").find("usage:") != std::string::npos);
}

TEST_CASE("the demo origin keeps listening after accepts fail for lack of descriptors") {
    DemoOrigin demo;
    DescriptorStarvation starved(demo.process().pid());
    std::vector<std::unique_ptr<Client>> clients;
    REQUIRE(connect_until(demo.port(), clients,
                          [&] { return read_all(demo.log()).find("accept failed") != std::string::npos; }));
    starved.end();
    CHECK(clients.back()->request("GET", "/stats").result_int() == 200);
    CHECK(fetch(demo.port(), "/1k").result_int() == 200);
}

TEST_CASE("the demo origin's workload objects are shaped by their query") {
    DemoOrigin demo;
    auto res = fetch(demo.port(), "/w/a?ttl=30&size=2000&swr=10&sie=300");
    CHECK(res.result_int() == 200);
    CHECK(res[boost::beast::http::field::cache_control] == "public, max-age=30, stale-while-revalidate=10, stale-if-error=300");
    CHECK(res.body().size() == 2000);
    CHECK_THAT(res.body(), Catch::StartsWith(R"({"key":"a")"));
    const std::string etag(res[boost::beast::http::field::etag]);
    REQUIRE_FALSE(etag.empty());
    CHECK(fetch(demo.port(), "/w/a?ttl=30&size=2000", "GET", {{"If-None-Match", etag}}).result_int() == 304);
    CHECK(fetch(demo.port(), "/w/b?ttl=0")[boost::beast::http::field::cache_control] == "no-store");
    CHECK(fetch(demo.port(), "/w/a", "GET", {{"Authorization", "Bearer u1"}})[boost::beast::http::field::cache_control] ==
          "private, max-age=60");

    auto varied = fetch(demo.port(), "/w/v?vary=Accept-Language", "GET", {{"Accept-Language", "de"}});
    CHECK(varied[boost::beast::http::field::vary] == "Accept-Language");
    CHECK_THAT(varied.body(), Catch::Contains(R"("variant":"de")"));

    CHECK(fetch(demo.port(), "/w/a", "POST").result_int() == 204);
    CHECK(fetch(demo.port(), "/w/f?fail=100").result_int() == 503);
    // The error mode: every workload request fails until it is turned off.
    CHECK(fetch(demo.port(), "/errors?percent=100", "POST").result_int() == 200);
    CHECK(fetch(demo.port(), "/w/a").result_int() == 503);
    CHECK(fetch(demo.port(), "/errors?percent=0", "POST").result_int() == 200);
    CHECK(fetch(demo.port(), "/w/a").result_int() == 200);

    const auto latency_start = std::chrono::steady_clock::now();
    CHECK(fetch(demo.port(), "/w/slow?latency=150").result_int() == 200);
    CHECK(std::chrono::steady_clock::now() - latency_start >= 150ms);
    CHECK_THAT(fetch(demo.port(), "/stats").body(), Catch::Contains(R"("workload":10)"));
}
