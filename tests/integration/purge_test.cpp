// Purges through the real binary: POST /purge on the admin listener, by URL, prefix, tag and
// all, hard and soft; its token; its refusals; and a purge reaching another process that shares
// the L1 file.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>

using namespace cachalot::test;

namespace {

// Answers carry the count of requests so far, tags by path, and an ETag; a conditional request
// that matches gets a 304.
TestOrigin::Handler tagged() {
    auto counter = std::make_shared<std::atomic<int>>(0);
    return [counter](const OriginRequest& r) {
        const int n = ++*counter;
        if (r.header("If-None-Match") == "\"same\"")
            return Reply{.status = 304, .headers = {{"Cache-Control", "max-age=600"}, {"ETag", "\"same\""}}};
        const auto path = r.target.substr(0, r.target.find('?'));
        std::string tags = "all-items";
        if (path.starts_with("/items/")) tags += " item:" + path.substr(7);
        if (path.starts_with("/users/")) tags = "user:" + path.substr(7);
        return Reply{.headers = {{"Cache-Control", "max-age=600"}, {"ETag", "\"same\""}, {"Surrogate-Key", tags},
                                 {"Vary", "Accept-Language"}},
                     .body = path + " " + std::to_string(n)};
    };
}

Response purge(const Daemon& d, const std::string& json, const Headers& headers = {}) {
    return fetch(d.admin_port(), "/purge", "POST", headers, json);
}

bool hit(const Response& r) { return std::string(r["Cache-Status"]).starts_with("cachalot; hit"); }

// Fetches until the answer is a hit (a fetch in the purge's own millisecond is covered by it and
// not kept), for up to 10 s.
Response until_hit(const Daemon& d, const std::string& target, const Headers& headers = {}) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        auto res = fetch(d.port(), target, "GET", headers);
        if (hit(res) || std::chrono::steady_clock::now() >= deadline) return res;
        std::this_thread::sleep_for(5ms);
    }
}

// Returns once the wall clock has left the current millisecond: a request sent from then on is
// later than a purge answered before the call (one in the purge's own millisecond is covered by it).
void past_this_millisecond() {
    const auto ms = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    for (const auto now = ms(); ms() <= now;) std::this_thread::yield();
}

}  // namespace

TEST_CASE("POST /purge by tag, prefix, URL (every variant) and everything makes the next request a miss") {
    TestOrigin origin(tagged());
    Daemon cachalot(proxy_config(origin.port()));
    const auto port = cachalot.port();
    for (const char* target : {"/items/1", "/items/2", "/users/1"}) fetch(port, target);
    fetch(port, "/items/1", "GET", {{"Accept-Language", "de"}});

    auto res = purge(cachalot, R"({"tag": "item:1"})");
    CHECK(res.result_int() == 200);
    CHECK_THAT(std::string(res.body()), Catch::StartsWith(R"({"purged":"tag","mode":"hard","what":"item:1","at":)"));
    CHECK_FALSE(hit(fetch(port, "/items/1")));
    CHECK_FALSE(hit(fetch(port, "/items/1", "GET", {{"Accept-Language", "de"}})));
    CHECK(hit(fetch(port, "/items/2")));
    until_hit(cachalot, "/items/1");

    CHECK(purge(cachalot, R"({"prefix": "/items", "host": "localhost"})").result_int() == 200);
    CHECK_FALSE(hit(fetch(port, "/items/1")));
    CHECK_FALSE(hit(fetch(port, "/items/2")));
    CHECK(hit(fetch(port, "/users/1")));
    until_hit(cachalot, "/items/2");

    CHECK(purge(cachalot, R"({"url": "http://localhost/items/2"})").result_int() == 200);
    CHECK_FALSE(hit(fetch(port, "/items/2")));
    CHECK(hit(fetch(port, "/users/1")));

    CHECK(purge(cachalot, R"({"all": true})").result_int() == 200);
    CHECK_FALSE(hit(fetch(port, "/users/1")));
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_purges_total{kind="all",mode="hard"})", 1) == 1);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_purges_total{kind="tag",mode="hard"})", 1) == 1);
    CHECK_THAT(cachalot.output(), Catch::Contains("purge from 127.0.0.1: tag hard item:1"));
}

TEST_CASE("a soft purge makes the stored response stale: the next request revalidates it") {
    TestOrigin origin(tagged());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/users/7");
    CHECK(purge(cachalot, R"({"tags": ["user:7"], "soft": true})").result_int() == 200);
    auto res = fetch(cachalot.port(), "/users/7");
    CHECK(res.body() == "/users/7 1");  // the stored body, confirmed by a 304
    CHECK_THAT(std::string(res["Cache-Status"]), Catch::StartsWith("cachalot; fwd=stale; fwd-status=304"));
    CHECK(origin.last_request().header("If-None-Match") == "\"same\"");
    CHECK(res.count("Surrogate-Key") == 0);  // tags are stripped from client responses
}

TEST_CASE("with admin.token, /purge needs it; /metrics and the health checks do not") {
    TestOrigin origin(tagged());
    const auto token_file = temp_dir() + "/admin-token";
    std::ofstream(token_file) << "correct-horse-battery\n";
    Daemon cachalot(proxy_config(origin.port(), "admin: {token_file: " + token_file + "}\n"));
    auto none = purge(cachalot, R"({"all": true})");
    CHECK(none.result_int() == 401);
    CHECK(none["WWW-Authenticate"] == "Bearer");
    CHECK(purge(cachalot, R"({"all": true})", {{"Authorization", "Bearer correct-horse-batterz"}}).result_int() == 401);
    CHECK(purge(cachalot, R"({"all": true})", {{"Authorization", "Bearer correct-horse-battery"}}).result_int() == 200);
    CHECK(fetch(cachalot.admin_port(), "/metrics").result_int() == 200);
    CHECK(fetch(cachalot.admin_port(), "/readyz").result_int() == 200);
    CHECK_THAT(cachalot.output(), Catch::Contains("purge refused from 127.0.0.1: no valid token"));
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, R"(cachalot_purge_refusals_total{reason="unauthorized"})") == 2);
    CHECK(metric_value(metrics, R"(cachalot_purge_refusals_total{reason="invalid"})") == 0);
}

TEST_CASE("bad purge requests get a 4xx with the reason, and purge nothing") {
    TestOrigin origin(tagged());
    Daemon cachalot(proxy_config(origin.port(), "admin: {max_body_bytes: 1KiB}\n"));
    fetch(cachalot.port(), "/items/1");
    auto bad_json = purge(cachalot, "{\"tag\": ");
    CHECK(bad_json.result_int() == 400);
    CHECK(bad_json["Content-Type"] == "application/json");
    CHECK_THAT(std::string(bad_json.body()), Catch::Contains("not valid JSON"));
    CHECK(purge(cachalot, R"({"kind": "tag"})").result_int() == 400);
    CHECK(purge(cachalot, R"({"tag": ""})").result_int() == 400);
    CHECK(purge(cachalot, R"({"prefix": "items", "host": "localhost"})").result_int() == 400);
    CHECK(purge(cachalot, "{\"tags\": [\"" + std::string(2000, 'x') + "\"]}").result_int() == 413);
    CHECK(fetch(cachalot.admin_port(), "/purge").result_int() == 405);
    CHECK(hit(fetch(cachalot.port(), "/items/1")));
    const auto metrics = fetch(cachalot.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, R"(cachalot_purges_total{kind="tag",mode="hard"})") == 0);
    CHECK(metric_value(metrics, R"(cachalot_purge_refusals_total{reason="invalid"})") == 4);  // (the 413 is the listener's)
}

TEST_CASE("a purge on one process reaches another process sharing the L1 file at once") {
    TestOrigin origin(tagged());
    const SharedL1 l1("purge");
    const auto config = l1.use_in(proxy_config(origin.port()));
    Daemon a(config);
    Daemon b(config);
    fetch(a.port(), "/items/3");
    CHECK(hit(fetch(b.port(), "/items/3")));  // one L1 file
    CHECK(purge(a, R"({"tag": "item:3"})").result_int() == 200);
    CHECK_FALSE(hit(fetch(b.port(), "/items/3")));
}

TEST_CASE("PURGE on the proxy listener purges the URL for allowed networks, 403 for others, and is forwarded "
          "when off") {
    TestOrigin origin(tagged());
    {
        Daemon allowed(proxy_config(origin.port(), "purge_method: {allow: [\"127.0.0.0/8\", \"::1\"]}\n"));
        fetch(allowed.port(), "/items/5");
        auto res = fetch(allowed.port(), "/items/5", "PURGE");
        CHECK(res.result_int() == 200);
        CHECK_THAT(std::string(res.body()), Catch::Contains(R"("what":"http://localhost/items/5")"));
        CHECK_FALSE(hit(fetch(allowed.port(), "/items/5")));
    }
    {
        Daemon elsewhere(proxy_config(origin.port(), "purge_method: {allow: [\"10.0.0.0/8\"]}\n"));
        fetch(elsewhere.port(), "/items/6");
        const auto seen = origin.request_count();
        CHECK(fetch(elsewhere.port(), "/items/6", "PURGE").result_int() == 403);
        CHECK(origin.request_count() == seen);  // never forwarded
        CHECK(hit(fetch(elsewhere.port(), "/items/6")));
        CHECK_THAT(elsewhere.output(), Catch::Contains("PURGE refused from 127.0.0.1"));
        CHECK(metric_value(fetch(elsewhere.admin_port(), "/metrics").body(),
                           R"(cachalot_purge_refusals_total{reason="forbidden"})") == 1);
    }
    Daemon off(proxy_config(origin.port()));
    fetch(off.port(), "/items/7");
    fetch(off.port(), "/items/7", "PURGE");
    CHECK(origin.last_request().method == "PURGE");  // not special: the origin's to answer
    CHECK(hit(fetch(off.port(), "/items/7")));
}

TEST_CASE("cachalot purge sends a purge to a node's admin listener, with its token") {
    TestOrigin origin(tagged());
    const auto token_file = temp_dir() + "/cli-token";
    std::ofstream(token_file) << "0123456789abcdef0123\n";
    Daemon cachalot(proxy_config(origin.port(), "admin: {token_file: " + token_file + "}\n"));
    fetch(cachalot.port(), "/items/8");
    const auto admin = "http://127.0.0.1:" + std::to_string(cachalot.admin_port());

    auto refused = run_cachalot({"purge", "--admin", admin, "--tag", "item:8"});
    CHECK(refused.exit_code == 1);
    CHECK_THAT(refused.output, Catch::Contains("a valid admin token is required"));
    CHECK(hit(fetch(cachalot.port(), "/items/8")));

    auto done = run_cachalot({"purge", "--admin", admin, "--token-file", token_file, "--tag", "item:8", "--soft"});
    CHECK(done.exit_code == 0);
    CHECK_THAT(done.output, Catch::Contains(R"({"purged":"tag","mode":"soft","what":"item:8")"));
    CHECK_FALSE(hit(fetch(cachalot.port(), "/items/8")));

    CHECK(run_cachalot({"purge", "--tag"}).exit_code == 2);
    CHECK(run_cachalot({"purge", "--admin", "http://127.0.0.1:1", "--all"}).exit_code == 1);  // nobody there
}

TEST_CASE("a soft-purged response within stale-while-revalidate is served stale while it revalidates") {
    TestOrigin origin(tagged());
    Daemon cachalot(with_route_cache(proxy_config(origin.port()), "{stale_while_revalidate: 60s}"));
    fetch(cachalot.port(), "/users/9");
    CHECK(purge(cachalot, R"({"tag": "user:9", "soft": true})").result_int() == 200);
    past_this_millisecond();  // (so that the revalidation below is not covered by the purge)
    auto stale = fetch(cachalot.port(), "/users/9");
    CHECK(stale.body() == "/users/9 1");
    CHECK_THAT(std::string(stale["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK_THAT(std::string(stale["Cache-Status"]), Catch::EndsWith("detail=stale-while-revalidate"));
    // The background revalidation is a conditional request; once it is in, the response is fresh.
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_cache_requests_total{result="revalidated",route="default"})",
                       1) == 1);
    CHECK(origin.last_request().header("If-None-Match") == "\"same\"");
    const std::string fresh(fetch(cachalot.port(), "/users/9")["Cache-Status"]);
    CHECK_THAT(fresh, Catch::StartsWith("cachalot; hit; ttl="));
    CHECK_THAT(fresh, !Catch::Contains("detail="));
}
