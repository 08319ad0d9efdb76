// HTTP caching in the request path: L1 lookups, RFC 9111 storability and freshness,
// conditional answers, invalidation, Cache-Status.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <unistd.h>

using namespace cachalot::test;

namespace {

std::string http_date(long offset_seconds) {
    std::time_t t = std::time(nullptr) + offset_seconds;
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", std::gmtime(&t));
    return buf;
}

// An origin whose answers are chosen by path; every answer carries the count of requests so far.
TestOrigin::Handler by_path() {
    auto counter = std::make_shared<std::atomic<int>>(0);
    return [counter](const OriginRequest& r) {
        int n = ++*counter;
        Reply reply{.body = "response " + std::to_string(n)};
        auto path = r.target.substr(0, r.target.find('?'));
        auto cc = [&](const std::string& v) { reply.headers.push_back({"Cache-Control", v}); };
        if (path == "/max-age") cc("max-age=60");
        else if (path == "/s-maxage") cc("s-maxage=60, max-age=0");
        else if (path == "/expires") reply.headers = {{"Date", http_date(0)}, {"Expires", http_date(60)}};
        else if (path == "/heuristic") reply.headers = {{"Date", http_date(0)}, {"Last-Modified", http_date(-36000)}};
        else if (path == "/expires-lower-case") {
            auto lower = [](std::string d) {
                for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                return d;
            };
            reply.headers = {{"Date", lower(http_date(0))}, {"Expires", lower(http_date(60))}};
        } else if (path == "/public-302") {
            reply.status = 302;
            reply.headers = {{"Cache-Control", "public"}, {"Location", "/max-age"}, {"Date", http_date(0)},
                             {"Last-Modified", http_date(-36000)}};
        } else if (path == "/private-field") {
            cc("private=\"X-User\", max-age=60");
            reply.headers.push_back({"X-User", "user " + std::to_string(n)});
        } else if (path == "/no-cache-etag") {
            cc("no-cache");
            reply.headers.push_back({"ETag", "\"nc\""});
            if (r.header("If-None-Match") == "\"nc\"") {
                reply.status = 304;
                reply.body.clear();
            }
        } else if (path == "/no-cache-bare") {
            cc("no-cache");
        } else if (path == "/must-understand") {
            cc("must-understand, no-store, max-age=60");
        } else if (path == "/must-understand-299") {
            reply.status = 299;
            cc("must-understand, no-store, max-age=60");
        } else if (path == "/bad-age") {
            cc("max-age=60");
            reply.headers.push_back({"Age", "old, 0"});
        }
        else if (path == "/no-store") cc("max-age=60, no-store");
        else if (path == "/private") cc("private, max-age=60");
        else if (path == "/public") cc("public, max-age=60");
        else if (path == "/etag") {
            cc("max-age=60");
            reply.headers.push_back({"ETag", "\"v7\""});
        } else if (path == "/cookie") {
            cc("max-age=60");
            reply.headers.push_back({"Set-Cookie", "session=abc"});
        } else if (path == "/created") {
            reply.status = 201;
            reply.headers.push_back({"Location", "/max-age"});
        } else if (path == "/post-doc") {
            cc("max-age=60");
            if (r.method == "POST") reply.headers.push_back({"Content-Location", "/post-doc"});
        } else if (path == "/updated") {
            reply.headers.push_back({"Content-Location", "http://localhost/max-age?x=1"});
        }
        return reply;
    };
}

}  // namespace

TEST_CASE("a fresh response is stored on the first request and served from L1 on the next") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto first = fetch(cachalot.port(), "/max-age");
    CHECK(first.body() == "response 1");
    CHECK(first["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    auto second = fetch(cachalot.port(), "/max-age");
    CHECK(second.body() == "response 1");
    CHECK_THAT(std::string(second["Cache-Status"]), Catch::StartsWith("cachalot; hit; ttl="));
    CHECK(second["Age"] == "0");
    CHECK(origin.request_count() == 1);
}

TEST_CASE("an Expires with its names in lower case still gives freshness (RFC 9110 §5.6.7)") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/expires-lower-case");
    CHECK_THAT(std::string(fetch(cachalot.port(), "/expires-lower-case")["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("a status not cacheable by default, marked public, gets heuristic freshness") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    // (ttl 3600 or, across a second boundary between the origin's Date and its arrival, 3599)
    CHECK_THAT(std::string(fetch(cachalot.port(), "/public-302")["Cache-Status"]),
               Catch::StartsWith("cachalot; fwd=uri-miss; fwd-status=302; stored; ttl=3"));
    CHECK_THAT(std::string(fetch(cachalot.port(), "/public-302")["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("private=\"field\": stored and shared without the named field, which only the first client sees") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto first = fetch(cachalot.port(), "/private-field");
    CHECK(first["X-User"] == "user 1");
    CHECK(first["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    auto second = fetch(cachalot.port(), "/private-field");
    CHECK_THAT(std::string(second["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(second.body() == "response 1");
    CHECK(second.count("X-User") == 0);
    CHECK(origin.request_count() == 1);
}

TEST_CASE("a no-cache response with a validator is stored and revalidated on every use; a 304 serves the stored body") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto first = fetch(cachalot.port(), "/no-cache-etag");
    CHECK(first.body() == "response 1");
    CHECK_THAT(std::string(first["Cache-Status"]), Catch::StartsWith("cachalot; fwd=uri-miss; fwd-status=200; stored"));
    for (std::size_t i = 2; i <= 3; ++i) {
        auto again = fetch(cachalot.port(), "/no-cache-etag");
        CHECK(again.result_int() == 200);
        CHECK(again.body() == "response 1");  // the stored body, after the origin's 304
        CHECK_THAT(std::string(again["Cache-Status"]), Catch::StartsWith("cachalot; fwd=stale; fwd-status=304"));
        CHECK(origin.last_request().header("If-None-Match") == "\"nc\"");
        CHECK(origin.request_count() == i);  // every use asks the origin
    }
    // Without a validator there is nothing to revalidate with: not stored.
    CHECK_THAT(std::string(fetch(cachalot.port(), "/no-cache-bare")["Cache-Status"]),
               Catch::EndsWith("detail=stale-on-arrival"));
}

TEST_CASE("must-understand: stored despite no-store for a known status, not stored for an unknown one") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/must-understand")["Cache-Status"] ==
          "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    CHECK_THAT(std::string(fetch(cachalot.port(), "/must-understand")["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(fetch(cachalot.port(), "/must-understand-299")["Cache-Status"] ==
          "cachalot; fwd=uri-miss; fwd-status=299; detail=status");
    CHECK(origin.request_count() == 2);
}

TEST_CASE("a response whose Age is not a number is never served as fresh") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/bad-age");
    auto second = fetch(cachalot.port(), "/bad-age");
    CHECK(second.body() == "response 2");
    CHECK_THAT(std::string(second["Cache-Status"]), !Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 2);
}

TEST_CASE("Vary: Accept-Language lists that ask for the same thing share a variant, other weights do not") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}},
                     .body = r.header("Accept-Language")};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/l", "GET", {{"Accept-Language", "en-US, fr;q=0.5"}}).body() == "en-US, fr;q=0.5");
    auto same = fetch(cachalot.port(), "/l", "GET", {{"Accept-Language", "FR;q=0.50,en-us"}});
    CHECK(same.body() == "en-US, fr;q=0.5");
    CHECK(same["Cache-Status"].starts_with("cachalot; hit"));
    auto other = fetch(cachalot.port(), "/l", "GET", {{"Accept-Language", "en-US, fr;q=0.6"}});
    CHECK(other.body() == "en-US, fr;q=0.6");
    CHECK(origin.request_count() == 2);
}

TEST_CASE("freshness from s-maxage, Expires and the Last-Modified heuristic each allow a hit") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    for (std::string path : {"/s-maxage", "/expires", "/heuristic"}) {
        INFO(path);
        fetch(cachalot.port(), path);
        CHECK_THAT(std::string(fetch(cachalot.port(), path)["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    }
    CHECK(origin.request_count() == 3);
}

TEST_CASE("responses a shared cache must not store are forwarded every time, with the reason") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    struct Case {
        std::string path;
        Headers headers;
        std::string detail;
    };
    for (const auto& c : std::vector<Case>{{"/no-store", {}, "no-store"},
                                           {"/private", {}, "private"},
                                           {"/max-age?auth", {{"Authorization", "Bearer t"}}, "authorization"},
                                           {"/other", {}, "stale-on-arrival"}}) {
        INFO(c.path);
        auto a = fetch(cachalot.port(), c.path, "GET", c.headers);
        CHECK_THAT(std::string(a["Cache-Status"]), Catch::EndsWith("detail=" + c.detail));
        auto b = fetch(cachalot.port(), c.path, "GET", c.headers);
        CHECK(a.body() != b.body());  // both came from the origin
    }
}

TEST_CASE("a request with Authorization is stored when the response says public") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/public", "GET", {{"Authorization", "Bearer t"}});
    auto other_user = fetch(cachalot.port(), "/public");
    CHECK_THAT(std::string(other_user["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("request no-cache and Pragma: no-cache go to the origin and refresh the stored response") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/max-age");
    auto forced = fetch(cachalot.port(), "/max-age", "GET", {{"Cache-Control", "no-cache"}});
    CHECK(forced.body() == "response 2");
    CHECK_THAT(std::string(forced["Cache-Status"]), Catch::StartsWith("cachalot; fwd=request; fwd-status=200; stored"));
    CHECK(fetch(cachalot.port(), "/max-age").body() == "response 2");
    CHECK(fetch(cachalot.port(), "/max-age", "GET", {{"Pragma", "no-cache"}}).body() == "response 3");
}

TEST_CASE("only-if-cached: 504 when nothing usable is stored, the stored response otherwise") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto none = fetch(cachalot.port(), "/max-age", "GET", {{"Cache-Control", "only-if-cached"}});
    CHECK(none.result_int() == 504);
    CHECK(origin.request_count() == 0);
    fetch(cachalot.port(), "/max-age");
    CHECK(fetch(cachalot.port(), "/max-age", "GET", {{"Cache-Control", "only-if-cached"}}).result_int() == 200);
}

TEST_CASE("HEAD is answered from a stored GET") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto get = fetch(cachalot.port(), "/max-age");
    Client client(cachalot.port());
    auto head = client.request("HEAD", "/max-age");
    CHECK(head.result_int() == 200);
    CHECK(head["Content-Length"] == std::to_string(get.body().size()));
    CHECK(head.body().empty());
    CHECK_THAT(std::string(head["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(client.request("GET", "/max-age").body() == get.body());  // the connection stayed in step
    CHECK(origin.request_count() == 1);
}

TEST_CASE("client conditionals are answered 304 from a fresh stored response") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/etag");
    auto match = fetch(cachalot.port(), "/etag", "GET", {{"If-None-Match", "W/\"v7\""}});
    CHECK(match.result_int() == 304);
    CHECK(match["ETag"] == "\"v7\"");
    CHECK(match.body().empty());
    auto other = fetch(cachalot.port(), "/etag", "GET", {{"If-None-Match", "\"v6\""}});
    CHECK(other.result_int() == 200);
    CHECK(origin.request_count() == 1);

    fetch(cachalot.port(), "/heuristic");  // Last-Modified: 10 hours ago
    CHECK(fetch(cachalot.port(), "/heuristic", "GET", {{"If-Modified-Since", http_date(0)}}).result_int() == 304);
    CHECK(fetch(cachalot.port(), "/heuristic", "GET", {{"If-Modified-Since", http_date(-72000)}}).result_int() ==
          200);
    CHECK(origin.request_count() == 2);

    // No Last-Modified: the stored Date is compared instead (RFC 9110 §13.1.3).
    fetch(cachalot.port(), "/expires");  // Date: now, Expires: in a minute
    CHECK(fetch(cachalot.port(), "/expires", "GET", {{"If-Modified-Since", http_date(0)}}).result_int() == 304);
    CHECK(fetch(cachalot.port(), "/expires", "GET", {{"If-Modified-Since", http_date(-3600)}}).result_int() == 200);
    CHECK(origin.request_count() == 3);
}

TEST_CASE("Set-Cookie reaches the client that caused the fetch but is never stored") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto first = fetch(cachalot.port(), "/cookie");
    CHECK(first["Set-Cookie"] == "session=abc");
    auto hit = fetch(cachalot.port(), "/cookie");
    CHECK_THAT(std::string(hit["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(hit.count("Set-Cookie") == 0);
}

TEST_CASE("a successful unsafe request invalidates the stored response for its URI and Location") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/max-age");
    fetch(cachalot.port(), "/max-age?x=1");
    CHECK(fetch(cachalot.port(), "/max-age", "DELETE").result_int() == 200);
    CHECK(fetch(cachalot.port(), "/max-age").body() == "response 4");
    CHECK(fetch(cachalot.port(), "/max-age?x=1").body() == "response 2");  // another URI: untouched
    CHECK(fetch(cachalot.port(), "/created", "POST", {}, "x").result_int() == 201);  // Location: /max-age
    CHECK(fetch(cachalot.port(), "/max-age").body() == "response 6");
    CHECK(fetch(cachalot.port(), "/updated", "PATCH", {}, "x").result_int() == 200);  // same-origin Content-Location
    CHECK(fetch(cachalot.port(), "/max-age?x=1").body() == "response 8");
}

TEST_CASE("a POST answered with freshness and its own URI as Content-Location is reused by the next GET") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/post-doc").body() == "response 1");
    auto post = fetch(cachalot.port(), "/post-doc", "POST", {}, "new state");
    CHECK(post.body() == "response 2");
    CHECK(post["Cache-Status"] == "cachalot; fwd=bypass; stored; ttl=60");
    auto get = fetch(cachalot.port(), "/post-doc");
    CHECK(get.body() == "response 2");  // the POST's answer, not the GET stored before it
    CHECK_THAT(std::string(get["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 2);
}

TEST_CASE("query order and default ports do not split the cache") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/max-age?a=1&b=2", "GET", {{"Host", "Example.com:80"}});
    auto same = fetch(cachalot.port(), "/max-age?b=2&a=1", "GET", {{"Host", "example.com"}});
    CHECK_THAT(std::string(same["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("a route with caching off forwards everything (fwd=bypass)") {
    TestOrigin origin(by_path());
    auto config = proxy_config(origin.port());
    config.replace(config.find("    upstream: origin\n"), 21, "    upstream: origin\n    cache: {enabled: false}\n");
    Daemon cachalot(config);
    fetch(cachalot.port(), "/max-age");
    auto again = fetch(cachalot.port(), "/max-age");
    CHECK(again["Cache-Status"] == "cachalot; fwd=bypass");
    CHECK(origin.request_count() == 2);
}

TEST_CASE("an origin failure is never stored") {
    auto port = free_port();
    Daemon cachalot(proxy_config(port));
    auto a = fetch(cachalot.port(), "/max-age");
    CHECK(a.result_int() == 502);
    CHECK_THAT(std::string(a["Cache-Status"]), Catch::EndsWith("detail=origin-unavailable"));
}

TEST_CASE("stored responses survive a restart: the L1 is warm") {
    TestOrigin origin(by_path());
    const SharedL1 l1("warm");
    const auto config = l1.use_in(proxy_config(origin.port()));
    {
        Daemon first(config);
        fetch(first.port(), "/max-age");
    }
    {
        Daemon second(config);
        auto hit = fetch(second.port(), "/max-age");
        CHECK(hit.body() == "response 1");
        CHECK_THAT(std::string(hit["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    }
    CHECK(origin.request_count() == 1);
}

TEST_CASE("cache metrics count hits, misses, revalidations, bypasses and store outcomes by route") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    fetch(cachalot.port(), "/max-age");
    fetch(cachalot.port(), "/max-age");
    fetch(cachalot.port(), "/no-store");
    fetch(cachalot.port(), "/max-age", "POST", {}, "x");
    auto port = cachalot.admin_port();
    CHECK(await_metric(port, R"(cachalot_cache_requests_total{result="hit",route="default"})", 1) == 1);
    CHECK(await_metric(port, R"(cachalot_cache_requests_total{result="miss",route="default"})", 2) == 2);
    CHECK(await_metric(port, R"(cachalot_cache_requests_total{result="bypass",route="default"})", 1) == 1);
    CHECK(await_metric(port, R"(cachalot_cache_store_total{outcome="stored",route="default"})", 1) == 1);
    CHECK(await_metric(port, R"(cachalot_cache_store_total{outcome="no-store",route="default"})", 1) == 1);
    CHECK(await_metric(port, "cachalot_l1_items", 0) == 0);  // the POST invalidated the one stored
}

namespace {

// The test config with a `cache:` block (YAML flow mapping) on its route.
std::string with_route_cache(std::uint16_t origin_port, const std::string& cache) {
    auto config = proxy_config(origin_port);
    config.replace(config.find("    upstream: origin\n"), 21, "    upstream: origin\n    cache: " + cache + "\n");
    return config;
}

}  // namespace

TEST_CASE("route key rules: ignored query parameters share an entry, key headers split it") {
    TestOrigin origin(by_path());
    Daemon cachalot(with_route_cache(origin.port(), "{key: {ignore_query_params: [\"utm_*\"], headers: [X-Tenant]}}"));
    fetch(cachalot.port(), "/max-age?utm_source=mail&id=1", "GET", {{"X-Tenant", "a"}});
    auto same = fetch(cachalot.port(), "/max-age?id=1&utm_campaign=x", "GET", {{"X-Tenant", "a"}});
    CHECK_THAT(std::string(same["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    auto other_tenant = fetch(cachalot.port(), "/max-age?id=1", "GET", {{"X-Tenant", "b"}});
    CHECK_THAT(std::string(other_tenant["Cache-Status"]), Catch::StartsWith("cachalot; fwd=uri-miss"));
    CHECK(origin.request_count() == 2);
}

TEST_CASE("route set_cookie: refuse stores nothing, store replays the cookie") {
    TestOrigin origin(by_path());
    Daemon refusing(with_route_cache(origin.port(), "{set_cookie: refuse}"));
    CHECK_THAT(std::string(fetch(refusing.port(), "/cookie")["Cache-Status"]), Catch::EndsWith("detail=set-cookie"));
    Daemon storing(with_route_cache(origin.port(), "{set_cookie: store}"));
    fetch(storing.port(), "/cookie");
    auto hit = fetch(storing.port(), "/cookie");
    CHECK_THAT(std::string(hit["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(hit["Set-Cookie"] == "session=abc");
}

TEST_CASE("CDN-Cache-Control and a configured targeted field decide this cache's freshness ahead of Cache-Control") {
    TestOrigin origin([](const OriginRequest& r) {
        Reply reply{.headers = {{"Cache-Control", "no-cache, max-age=0"}, {"Expires", "0"}}, .body = "x"};
        if (r.target == "/cdn") reply.headers.push_back({"CDN-Cache-Control", "max-age=120"});
        if (r.target == "/ours") {
            reply.headers.push_back({"CDN-Cache-Control", "no-store"});
            reply.headers.push_back({"Cachalot-Cache-Control", "max-age=30"});
        }
        return reply;
    });
    auto config = proxy_config(origin.port());
    config.replace(config.find("cache:\n"), 7,
                   "cache:\n  targeted_field: Cachalot-Cache-Control\n  strip_targeted_fields: true\n");
    Daemon targeted(config);
    auto cdn = fetch(targeted.port(), "/cdn");
    CHECK(cdn["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=120");
    CHECK(cdn.count("CDN-Cache-Control") == 0);  // stripped on the way out
    CHECK(cdn["Cache-Control"] == "no-cache, max-age=0");  // meant for downstream caches: kept
    auto ours = fetch(targeted.port(), "/ours");
    CHECK(ours["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=30");
    CHECK(ours.count("Cachalot-Cache-Control") == 0);
    CHECK_THAT(std::string(fetch(targeted.port(), "/cdn")["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    auto plain = fetch(targeted.port(), "/plain");
    CHECK_THAT(std::string(plain["Cache-Status"]), Catch::EndsWith("detail=stale-on-arrival"));
}

TEST_CASE("a targeted field that is not a valid structured Dictionary is ignored and Cache-Control decides") {
    TestOrigin origin([](const OriginRequest& r) {
        Reply reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "x"};
        if (r.target == "/quoted") reply.headers.push_back({"CDN-Cache-Control", "max-age=\"600\""});  // a String
        if (r.target == "/no-store") reply.headers.push_back({"CDN-Cache-Control", "no-store=yes"});    // a Token
        return reply;
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/quoted")["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    CHECK(fetch(cachalot.port(), "/no-store")["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
}

TEST_CASE("debug_cache_status adds the cache key to Cache-Status") {
    TestOrigin origin(by_path());
    auto config = proxy_config(origin.port());
    config.replace(config.find("cache:\n"), 7, "cache:\n  debug_cache_status: true\n");
    Daemon cachalot(config);
    auto res = fetch(cachalot.port(), "/max-age?b=2&a=1", "GET", {{"Host", "Example.com:80"}});
    CHECK_THAT(std::string(res["Cache-Status"]), Catch::EndsWith("; key=\"GET http://example.com/max-age?a=1&b=2\""));
    Daemon quiet(proxy_config(origin.port()));
    CHECK_THAT(std::string(fetch(quiet.port(), "/max-age")["Cache-Status"]), !Catch::Contains("key="));
}

TEST_CASE("request no-store: the response is forwarded and not stored") {
    TestOrigin origin(by_path());
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/max-age", "GET", {{"Cache-Control", "no-store"}});
    CHECK_THAT(std::string(res["Cache-Status"]), Catch::EndsWith("detail=request-no-store"));
    CHECK_THAT(std::string(fetch(cachalot.port(), "/max-age")["Cache-Status"]), Catch::StartsWith("cachalot; fwd=uri-miss"));
}
