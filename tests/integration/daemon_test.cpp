// The daemon as an operator sees it: CLI, admin endpoints, metrics, logs, signals.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>

using namespace cachalot::test;

TEST_CASE("check-config exits 0 on a valid file and 1 with file:line: key on an invalid one") {
    auto dir = temp_dir();
    {
        std::string good = proxy_config(8081);
        for (auto [from, to] :
             {std::pair{"{proxy_port}", "8080"}, {"{admin_port}", "9090"}, {"{l1_path}", "/dev/shm/unused"}})
            good.replace(good.find(from), std::string(from).size(), to);
        std::ofstream(dir + "/good.yaml") << good;
    }
    std::ofstream(dir + "/bad.yaml") << "upstreams:\n  - name: a\n    host: h\n    port: 99999\n"
                                        "routes:\n  - {name: r, upstream: b}\n";

    auto ok = run_cachalot({"--check-config", dir + "/good.yaml"});
    CHECK(ok.exit_code == 0);

    auto bad = run_cachalot({"--check-config", dir + "/bad.yaml"});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.output, Catch::Contains(dir + "/bad.yaml:4: upstreams[0].port: must be between 1 and 65535"));
    CHECK_THAT(bad.output, Catch::Contains(dir + "/bad.yaml:6: routes[0].upstream: no upstream named 'b'"));

    auto missing = run_cachalot({"--check-config", dir + "/missing.yaml"});
    CHECK(missing.exit_code == 1);
    CHECK_THAT(missing.output, Catch::Contains("missing.yaml: cannot open the file"));
}

TEST_CASE("starting with an invalid config exits 1 with the problems") {
    auto dir = temp_dir();
    std::ofstream(dir + "/bad.yaml") << "workers: lots\n";
    auto r = run_cachalot({"--config", dir + "/bad.yaml"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("bad.yaml:1: workers: expected a whole number, got 'lots'"));
}

TEST_CASE("help and version options") {
    auto help = run_cachalot({"--help"});
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("--check-config FILE"));
    auto version = run_cachalot({"--version"});
    CHECK(version.exit_code == 0);
    CHECK_THAT(version.output, Catch::StartsWith("cachalot "));
    CHECK(run_cachalot({"--bogus"}).exit_code == 2);
}

TEST_CASE("a port already in use is a clear startup error") {
    TestOrigin origin;
    auto dir = temp_dir();
    auto config = proxy_config(origin.port());
    const std::string l1 = "/dev/shm/cachalot-test-inuse-" + std::to_string(getpid());
    for (auto [from, to] : {std::pair<std::string, std::string>{"{proxy_port}", std::to_string(origin.port())},
                            {"{admin_port}", std::to_string(free_port())},
                            {"{l1_path}", l1}})
        config.replace(config.find(from), from.size(), to);
    std::ofstream(dir + "/c.yaml") << config;
    auto r = run_cachalot({"--config", dir + "/c.yaml"});
    std::filesystem::remove(l1);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(origin.port())));
}

TEST_CASE("/healthz and /readyz answer on the admin listener") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    auto health = fetch(cachalot.admin_port(), "/healthz");
    CHECK(health.result_int() == 200);
    CHECK(health.body() == "ok\n");
    CHECK(fetch(cachalot.admin_port(), "/readyz").result_int() == 200);
    CHECK(fetch(cachalot.admin_port(), "/nope").result_int() == 404);
    CHECK(fetch(cachalot.admin_port(), "/metrics", "POST").result_int() == 405);
}

TEST_CASE("/metrics exposes requests, durations, upstream connections and active connections after traffic") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.status = r.target == "/missing" ? 404u : 200u}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client held_open(cachalot.port());
    CHECK(held_open.request("GET", "/a").result_int() == 200);
    CHECK(fetch(cachalot.port(), "/b").result_int() == 200);
    CHECK(fetch(cachalot.port(), "/missing").result_int() == 404);

    auto port = cachalot.admin_port();
    CHECK(await_metric(port, R"(cachalot_requests_total{route="default",status_class="2xx"})", 2) == 2);
    CHECK(await_metric(port, R"(cachalot_requests_total{route="default",status_class="4xx"})", 1) == 1);
    CHECK(await_metric(port, R"(cachalot_request_duration_seconds_count{route="default"})", 3) == 3);
    CHECK(await_metric(port, R"(cachalot_upstream_request_duration_seconds_count{upstream="origin"})", 3) == 3);
    CHECK(await_metric(port, R"(cachalot_upstream_connections_total{kind="new",upstream="origin"})", 1) == 1);
    CHECK(await_metric(port, R"(cachalot_upstream_connections_total{kind="reused",upstream="origin"})", 2) == 2);
    CHECK(await_metric(port, "cachalot_active_connections", 1) == 1);  // held_open

    auto res = fetch(port, "/metrics");
    CHECK(res.result_int() == 200);
    CHECK_THAT(std::string(res["Content-Type"]), Catch::StartsWith("text/plain; version=0.0.4"));
    auto m = res.body();
    CHECK_THAT(m, Catch::Contains("# TYPE cachalot_request_duration_seconds histogram"));
}

TEST_CASE("one access-log line per request, text by default") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/logged?x=1");
    cachalot.signal(SIGTERM);
    CHECK(cachalot.wait() == 0);
    CHECK_THAT(cachalot.output(), Catch::Contains("127.0.0.1 \"GET /logged?x=1\" 200 2 "));
    CHECK_THAT(cachalot.output(), Catch::Contains("route=default"));
}

TEST_CASE("the access log is JSON when configured") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port(), "logging: {format: json}\n"));
    fetch(cachalot.port(), "/j\"son");
    cachalot.signal(SIGTERM);
    CHECK(cachalot.wait() == 0);
    auto out = cachalot.output();
    CHECK_THAT(out, Catch::Contains(R"("method":"GET","path":"/j\"son","status":200,"bytes":2,)"));
    CHECK_THAT(out, Catch::Contains(R"("route":"default"})"));
}

TEST_CASE("SIGTERM lets an in-flight request finish, refuses new connections, and exits 0") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.body = "finished", .delay = r.target == "/slow" ? 1500ms : 0ms};
    });
    Daemon cachalot(proxy_config(origin.port(), "drain_timeout: 10s\n"));
    auto port = cachalot.port();
    Client idle(port);
    CHECK(idle.request("GET", "/warm").result_int() == 200);

    auto slow = std::async(std::launch::async, [port] { return fetch(port, "/slow"); });
    while (origin.request_count() < 2) std::this_thread::sleep_for(10ms);  // the slow request is at the origin
    cachalot.signal(SIGTERM);

    CHECK(idle.closed_by_peer());  // idle keep-alive connections are closed at once
    // The listener closes while the slow request is still in flight: a new connection is refused.
    bool refused = false;
    for (auto deadline = std::chrono::steady_clock::now() + 10s; !refused && std::chrono::steady_clock::now() < deadline;) {
        try {
            Client probe(port);
            std::this_thread::sleep_for(20ms);
        } catch (const std::exception&) {
            refused = true;
        }
    }
    CHECK(refused);

    auto res = slow.get();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "finished");
    CHECK(res["Connection"] == "close");
    CHECK(cachalot.wait() == 0);
}

TEST_CASE("the drain gives up after drain_timeout and still exits 0") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.body = "late", .delay = 5000ms}; });
    Daemon cachalot(proxy_config(origin.port(), "drain_timeout: 300ms\n"));
    auto port = cachalot.port();
    auto slow = std::async(std::launch::async, [port] {
        try {
            return fetch(port, "/").result_int();
        } catch (const std::exception&) {
            return 0u;
        }
    });
    while (origin.request_count() < 1) std::this_thread::sleep_for(10ms);
    auto start = std::chrono::steady_clock::now();
    cachalot.signal(SIGTERM);
    CHECK(cachalot.wait(4s) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 4s);
    slow.get();
}

TEST_CASE("the L1 opens at startup, shows in /metrics, and is reused warm after a restart") {
    TestOrigin origin;
    const SharedL1 shared("restart");
    const auto& l1 = shared.path();
    const auto config = shared.use_in(proxy_config(origin.port()));
    {
        Daemon first(config);
        CHECK_THAT(first.output(), Catch::Contains("L1 " + l1 + ": created"));
        auto m = fetch(first.admin_port(), "/metrics").body();
        CHECK(metric_value(m, "cachalot_l1_capacity_bytes") > 0);
        CHECK(metric_value(m, "cachalot_l1_items") == 0);
        CHECK_THAT(m, Catch::Contains("# TYPE cachalot_l1_evictions_total counter"));
        first.signal(SIGTERM);
        CHECK(first.wait() == 0);
    }
    {
        Daemon second(config);
        CHECK_THAT(second.output(), Catch::Contains("L1 " + l1 + ": reused-clean"));
    }
}

TEST_CASE("an L1 that cannot be opened is a clear startup error") {
    TestOrigin origin;
    auto dir = temp_dir();
    auto config = proxy_config(origin.port());
    for (auto [from, to] : {std::pair<std::string, std::string>{"{proxy_port}", std::to_string(free_port())},
                            {"{admin_port}", std::to_string(free_port())},
                            {"{l1_path}", "/nonexistent-dir/l1"}})
        config.replace(config.find(from), from.size(), to);
    std::ofstream(dir + "/c.yaml") << config;
    auto r = run_cachalot({"--config", dir + "/c.yaml"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("/nonexistent-dir/l1: cannot open"));
}

namespace {
std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("out of file descriptors, both accept loops back off instead of spinning, and recover after") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    auto failures = [&](const std::string& listener) {
        return count_of(cachalot.output(), listener + " listener: accept failed");
    };
    DescriptorStarvation starved(cachalot.pid());
    std::vector<std::unique_ptr<Client>> proxy_clients, admin_clients;
    REQUIRE(connect_until(cachalot.port(), proxy_clients, [&] { return failures("proxy") > 0; }));
    REQUIRE(connect_until(cachalot.admin_port(), admin_clients, [&] { return failures("admin") > 0; }));
    // A spinning loop logs (and burns a core) thousands of times a second; backing off 50 ms
    // between attempts gives about 20 per listener. The bound leaves a 5x margin.
    const auto before = failures("proxy") + failures("admin");
    const auto started = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1s);  // the window the rate is measured over
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(double(failures("proxy") + failures("admin") - before) < 200 * seconds);

    // Descriptors back: the connections that waited are served.
    starved.end();
    CHECK(proxy_clients.back()->request("GET", "/").result_int() == 200);
    CHECK(admin_clients.back()->request("GET", "/healthz").result_int() == 200);
    CHECK(cachalot.running());
}
