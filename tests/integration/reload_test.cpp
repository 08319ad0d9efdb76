// Configuration reload (SIGHUP, POST /reload): a valid file is put in force for new requests,
// an invalid one or one that needs a restart is refused and the running configuration stays,
// requests in flight finish on the configuration they started with, and nothing fails while
// reloads happen under load.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <future>

using namespace cachalot::test;

namespace {

// Two upstreams, "a" and "b"; route "default" goes to `route_to`. Responses are not cached
// (the origins say no-store), so each request shows which upstream answered it.
std::string two_upstreams(std::uint16_t a, std::uint16_t b, const std::string& route_to,
                          const std::string& extra = "") {
    return "listen:\n"
           "  proxy: {address: 127.0.0.1, port: {proxy_port}}\n"
           "  admin: {address: 127.0.0.1, port: {admin_port}}\n"
           "workers: 2\n"
           "upstreams:\n"
           "  - {name: a, host: 127.0.0.1, port: " +
           std::to_string(a) +
           "}\n"
           "  - {name: b, host: 127.0.0.1, port: " +
           std::to_string(b) +
           "}\n"
           "routes:\n"
           "  - name: default\n"
           "    match: {path_prefix: /}\n"
           "    upstream: " +
           route_to +
           "\n"
           "cache:\n"
           "  l1: {path: \"{l1_path}\", size: 8MiB, max_object_size: 256KiB}\n" +
           extra;
}

Response post_reload(const Daemon& d, const Headers& headers = {}) {
    return fetch(d.admin_port(), "/reload", "POST", headers);
}

}  // namespace

TEST_CASE("POST /reload puts a valid configuration in force and says what changed") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a"));
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");

    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "b", "client: {max_header_bytes: 8KiB}\n"));
    auto res = post_reload(cachalot);
    CHECK(res.result_int() == 200);
    CHECK_THAT(res.body(), Catch::Contains(R"("result":"reloaded")"));
    CHECK_THAT(res.body(), Catch::Contains(R"("changed":["routes: changed default","client"])"));
    CHECK_THAT(cachalot.output(), Catch::Contains("configuration reloaded from " + cachalot.config_path() +
                                                  ": routes: changed default; client"));
    // Every worker serves with it (requests on new connections land on either of the two).
    for (int i = 0; i < 6; ++i) CHECK(fetch(cachalot.port(), "/x").body() == "from b");

    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, R"(cachalot_config_reloads_total{result="success"})") == 1);
    CHECK(metric_value(metrics, R"(cachalot_config_reloads_total{result="failure"})") == 0);
    CHECK(metric_value(metrics, "cachalot_config_last_reload_successful") == 1);
    CHECK(metric_value(metrics, "cachalot_config_last_reload_success_timestamp_seconds") > 1.7e9);

    // The same file again: nothing to do.
    auto again = post_reload(cachalot);
    CHECK(again.result_int() == 200);
    CHECK_THAT(again.body(), Catch::Contains(R"("result":"unchanged")"));
    CHECK(fetch(cachalot.admin_port(), "/reload").result_int() == 405);  // a reload is a POST
}

TEST_CASE("SIGHUP reloads the configuration file") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a"));
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");
    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "b"));
    cachalot.signal(SIGHUP);
    CHECK(eventually([&] { return fetch(cachalot.port(), "/x").body() == "from b"; }));
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_config_reloads_total{result="success"})", 1) == 1);
    CHECK(cachalot.running());
}

TEST_CASE("an invalid configuration is refused with FILE:LINE: KEY and the running one stays") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a"));
    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "nowhere"));
    auto res = post_reload(cachalot);
    CHECK(res.result_int() == 400);
    CHECK_THAT(res.body(), Catch::Contains(R"("result":"invalid")"));
    CHECK_THAT(res.body(), Catch::Contains(cachalot.config_path() + ":11: routes[0].upstream: no upstream named 'nowhere'"));
    CHECK_THAT(cachalot.output(), Catch::Contains("reload refused, the running configuration stays: " +
                                                  cachalot.config_path() + ":11: routes[0].upstream"));
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");

    // Not YAML at all, by signal: refused the same way, logged.
    cachalot.rewrite_config("routes: [unclosed\n");
    cachalot.signal(SIGHUP);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_config_reloads_total{result="failure"})", 2) == 2);
    CHECK(metric_value(fetch(cachalot.admin_port(), "/metrics").body(), "cachalot_config_last_reload_successful") == 0);
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");
    CHECK(cachalot.running());
}

TEST_CASE("a change that needs a restart is refused, naming it") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a"));
    auto changed = two_upstreams(a.port(), b.port(), "b");
    changed.replace(changed.find("workers: 2"), 10, "workers: 3");
    changed.replace(changed.find("size: 8MiB"), 10, "size: 9MiB");
    cachalot.rewrite_config(changed);
    auto res = post_reload(cachalot);
    CHECK(res.result_int() == 409);
    CHECK_THAT(res.body(), Catch::Contains(R"("needs_restart":["workers","cache.l1"])"));
    CHECK_THAT(cachalot.output(), Catch::Contains("these changes need a restart: workers; cache.l1"));
    // Nothing of it applies, not even the part that could (the route).
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");
}

TEST_CASE("POST /reload needs the admin token when one is configured") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    const auto token_file = temp_dir() + "/admin-token";
    std::ofstream(token_file) << "correct-horse-battery\n";
    const auto token = "admin: {token_file: " + token_file + "}\n";
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a", token));
    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "b", token));
    CHECK(post_reload(cachalot).result_int() == 401);
    CHECK(post_reload(cachalot, {{"Authorization", "Bearer wrong-horse-battery"}}).result_int() == 401);
    CHECK(fetch(cachalot.port(), "/x").body() == "from a");
    CHECK(post_reload(cachalot, {{"Authorization", "Bearer correct-horse-battery"}}).result_int() == 200);
    CHECK(fetch(cachalot.port(), "/x").body() == "from b");
}

TEST_CASE("a request in flight during a reload finishes on the configuration it started with") {
    Gate release;
    std::atomic<bool> arrived{false};
    TestOrigin a([&](const OriginRequest& r) {
        if (r.target == "/slow") {
            arrived = true;
            release.wait();
        }
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "from a"};
    });
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a"));
    auto slow = std::async(std::launch::async, [&] { return fetch(cachalot.port(), "/slow").body(); });
    REQUIRE(eventually([&] { return arrived.load(); }));

    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "b"));
    REQUIRE(post_reload(cachalot).result_int() == 200);
    CHECK(fetch(cachalot.port(), "/x").body() == "from b");  // new requests: the new configuration
    release.open();
    CHECK(slow.get() == "from a");                           // the one in flight: the old one
    CHECK(a.request_count() == 1);
}

TEST_CASE("a reload keeps the pooled connections of upstreams that did not change") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    auto config = two_upstreams(a.port(), b.port(), "a");
    config.replace(config.find("workers: 2"), 10, "workers: 1");
    Daemon cachalot(config);
    Client client(cachalot.port());
    CHECK(client.request("GET", "/1").body() == "from a");
    REQUIRE(a.connections() == 1);

    // Upstream a unchanged (a new route to b): its connection is used again.
    auto more = config;
    more.replace(more.find("routes:\n"), 8, "routes:\n  - {name: other, match: {path_prefix: /other}, upstream: b}\n");
    cachalot.rewrite_config(more);
    REQUIRE(post_reload(cachalot).result_int() == 200);
    CHECK(client.request("GET", "/2").body() == "from a");
    CHECK(fetch(cachalot.port(), "/other").body() == "from b");
    CHECK(a.connections() == 1);
    CHECK(a.last_request().index_on_connection == 2);

    // Upstream a changed: a pool of its own, new connections.
    auto changed = more;
    const std::string entry = "port: " + std::to_string(a.port()) + "}";
    changed.replace(changed.find(entry), entry.size(), "port: " + std::to_string(a.port()) + ", idle_timeout: 20s}");
    cachalot.rewrite_config(changed);
    auto res = post_reload(cachalot);
    REQUIRE(res.result_int() == 200);
    CHECK_THAT(res.body(), Catch::Contains("upstreams: changed a"));
    CHECK(client.request("GET", "/3").body() == "from a");
    CHECK(a.connections() == 2);
}

TEST_CASE("reloads under a steady request stream fail no request") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    const auto to_a = two_upstreams(a.port(), b.port(), "a");
    const auto to_b = two_upstreams(a.port(), b.port(), "b");
    Daemon cachalot(to_a);

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::mutex mutex;
    std::string first_failure;
    auto stream = [&](bool keep_alive) {
        std::unique_ptr<Client> client;
        while (!stop) {
            try {
                if (!client || !keep_alive) client = std::make_unique<Client>(cachalot.port());
                const auto res = client->request("GET", "/load");
                if (res.result_int() == 200 && (res.body() == "from a" || res.body() == "from b")) {
                    ++ok;
                    continue;
                }
                std::lock_guard lock(mutex);
                if (first_failure.empty()) first_failure = std::to_string(res.result_int()) + " " + res.body();
            } catch (const std::exception& e) {
                std::lock_guard lock(mutex);
                if (first_failure.empty()) first_failure = e.what();
                client.reset();
            }
            ++failed;
        }
    };
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) clients.emplace_back(stream, i % 2 == 0);

    for (int i = 0; i < 20; ++i) {
        const int before = ok.load();
        REQUIRE(eventually([&] { return ok.load() >= before + 20; }));  // traffic between reloads
        cachalot.rewrite_config(i % 2 == 0 ? to_b : to_a);
        if (i % 4 == 3) {
            cachalot.signal(SIGHUP);
            CHECK(await_metric(cachalot.admin_port(), R"(cachalot_config_reloads_total{result="success"})", i + 1) == i + 1);
        } else {
            CHECK(post_reload(cachalot).result_int() == 200);
        }
    }
    stop = true;
    for (auto& t : clients) t.join();
    INFO("first failure: " << first_failure);
    CHECK(failed == 0);
    CHECK(ok > 400);
    CHECK(a.request_count() > 0);
    CHECK(b.request_count() > 0);
}

TEST_CASE("a reload applies the log level and the access log") {
    TestOrigin a(uncached("from a"));
    TestOrigin b(uncached("from b"));
    Daemon cachalot(two_upstreams(a.port(), b.port(), "a", "logging: {level: info, access_log: false}\n"));
    fetch(cachalot.port(), "/before-reload");

    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "a", "logging: {level: warn, access_log: true}\n"));
    auto res = post_reload(cachalot);
    CHECK_THAT(res.body(), Catch::Contains(R"("changed":["logging.level","logging.access_log"])"));
    // The reload logs at info once the new level is in force, before it answers: at warn, not at all.
    CHECK(cachalot.output().find("configuration reloaded from") == std::string::npos);
    fetch(cachalot.port(), "/after-reload");
    CHECK(eventually([&] { return cachalot.output().find("/after-reload") != std::string::npos; }));

    cachalot.rewrite_config(two_upstreams(a.port(), b.port(), "a", "logging: {level: info, access_log: true}\n"));
    CHECK(post_reload(cachalot).result_int() == 200);
    CHECK_THAT(cachalot.output(), Catch::Contains("configuration reloaded from " + cachalot.config_path() + ": logging.level"));
    CHECK(cachalot.output().find("/before-reload") == std::string::npos);  // the access log was off then
}

TEST_CASE("active health checks go on after a reload, with the new configuration's") {
    std::atomic<int> checks{0};
    TestOrigin a([&](const OriginRequest& r) {
        if (r.target == "/healthz") ++checks;
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "from a"};
    });
    TestOrigin b(uncached("from b"));
    auto config = two_upstreams(a.port(), b.port(), "a");
    const std::string entry = "port: " + std::to_string(a.port()) + "}";
    config.replace(config.find(entry), entry.size(),
                   "port: " + std::to_string(a.port()) + ", health_check: {path: /healthz, interval: 50ms}}");
    Daemon cachalot(config);
    REQUIRE(eventually([&] { return checks.load() >= 3; }));

    // A change elsewhere: upstream a keeps its state, and its checks go on.
    auto more = config;
    more.replace(more.find("workers: 2"), 10, "workers: 2\nclient: {idle_timeout: 20s}");
    cachalot.rewrite_config(more);
    REQUIRE(post_reload(cachalot).result_int() == 200);
    int at_reload = checks.load();
    CHECK(eventually([&] { return checks.load() >= at_reload + 5; }));

    // Upstream a changed (another check path): checks of the new path, none of the old one after.
    auto changed = more;
    changed.replace(changed.find("path: /healthz"), 14, "path: /ready");
    cachalot.rewrite_config(changed);
    REQUIRE(post_reload(cachalot).result_int() == 200);
    CHECK(eventually([&] {
        const auto requests = a.requests();
        return std::count_if(requests.begin(), requests.end(), [](const OriginRequest& r) { return r.target == "/ready"; }) >= 3;
    }));
    // The old loop stops at its next wake (50 ms): after that, /healthz is no longer asked for.
    at_reload = checks.load();
    const auto ready_now = [&] {
        const auto requests = a.requests();
        return std::count_if(requests.begin(), requests.end(), [](const OriginRequest& r) { return r.target == "/ready"; });
    };
    const auto ready_before = ready_now();
    REQUIRE(eventually([&] { return ready_now() >= ready_before + 5; }));
    CHECK(checks.load() <= at_reload + 1);
}
