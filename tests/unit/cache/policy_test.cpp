// The route's caching policy, without I/O: every decision at a time the test chooses, so that
// freshness boundaries are exact, never a race against the clock.

#include "cachalot/cache/policy.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using cache::Detail;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

const http::Time T0{http::Seconds{1'700'000'000}};

http::Fields fields(std::initializer_list<std::pair<const char*, const char*>> list) {
    http::Fields f;
    for (auto [n, v] : list) f.insert(n, v);
    return f;
}

// A response stored at T0 for `request_fields`, as the pipeline would store it.
struct Stored {
    cache::Entry entry;
    http::Fields fields;
};
Stored stored_at(const cache::Policy& policy, unsigned status, http::Fields response, http::Fields request = {}) {
    const auto decision = policy.decide_store(false, cache::request_directives(request), request, status, response, T0, T0);
    REQUIRE(decision.refused == Detail::None);
    auto entry = policy.entry_for(decision, status, response, "body", request, T0, T0);
    http::Fields f;
    for (const auto& [n, v] : entry.headers) f.insert(n, v);
    return {entry, f};
}

Detail refused(const cache::Policy& policy, unsigned status, http::Fields response, http::Fields request = {},
               bool head = false) {
    return policy.decide_store(head, cache::request_directives(request), request, status, response, T0, T0).refused;
}

}  // namespace

TEST_CASE("policy: the freshness lifetime is the origin's, else the route's TTL, capped by max_ttl", "[policy]") {
    config::Cache global;
    config::RouteCache route;
    route.default_ttl = seconds(30);
    route.status_ttl = {{404, seconds(7)}};
    cache::Policy policy(route, global);
    auto lifetime = [&](unsigned status, http::Fields f) {
        return policy.decide_store(false, {}, {}, status, f, T0, T0).judged.lifetime.count();
    };
    CHECK(lifetime(200, fields({{"Cache-Control", "max-age=100"}})) == 100);
    CHECK(lifetime(200, fields({})) == 30);   // the origin says nothing: default_ttl
    CHECK(lifetime(404, fields({})) == 7);    // status_ttl first
    CHECK(lifetime(500, fields({})) == 0);    // default_ttl is for 2xx and 3xx only

    route.override_origin = true;
    CHECK(lifetime(200, fields({{"Cache-Control", "max-age=100"}})) == 30);
    route.override_origin = false;
    route.max_ttl = seconds(50);
    CHECK(lifetime(200, fields({{"Cache-Control", "max-age=100"}})) == 50);
}

TEST_CASE("policy: a targeted field stands in for Cache-Control and Expires", "[policy]") {
    config::Cache global;
    global.targeted_field = "Cachalot-Cache-Control";
    config::RouteCache route;
    cache::Policy policy(route, global);
    auto f = fields({{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=20"}});
    auto d = policy.decide_store(false, {}, {}, 200, f, T0, T0);
    CHECK(d.refused == Detail::None);
    CHECK(d.judged.lifetime.count() == 20);
    f.insert("Cachalot-Cache-Control", "max-age=5");  // the configured field comes first
    CHECK(policy.decide_store(false, {}, {}, 200, f, T0, T0).judged.lifetime.count() == 5);
    CHECK_FALSE(policy.targeted_view(fields({{"Cache-Control", "max-age=1"}})));
}

TEST_CASE("policy: a targeted field that is not a valid Dictionary, or has a directive of the wrong type, is ignored",
          "[policy]") {
    config::Cache global;
    global.targeted_field = "Cachalot-Cache-Control";
    config::RouteCache route;
    cache::Policy policy(route, global);
    // The configured field is invalid: CDN-Cache-Control is next.
    auto f = fields({{"Cache-Control", "max-age=100"}, {"Cachalot-Cache-Control", "max-age=\"5\""},
                     {"CDN-Cache-Control", "max-age=20"}});
    CHECK(policy.decide_store(false, {}, {}, 200, f, T0, T0).judged.lifetime.count() == 20);
    // Both invalid: Cache-Control decides.
    f = fields({{"Cache-Control", "max-age=100"}, {"CDN-Cache-Control", "max-age=20.5"}});
    CHECK_FALSE(policy.targeted_view(f));
    CHECK(policy.decide_store(false, {}, {}, 200, f, T0, T0).judged.lifetime.count() == 100);
    // A valid one with no known directive still stands in: nothing says the response is fresh.
    f = fields({{"Cache-Control", "max-age=100"}, {"CDN-Cache-Control", "x-unknown"}});
    CHECK(policy.decide_store(false, {}, {}, 200, f, T0, T0).refused != Detail::None);
}

TEST_CASE("policy: private=\"field\" is stored without the fields it names, and a 304 cannot bring them back",
          "[policy]") {
    config::Cache global;
    config::RouteCache route;
    cache::Policy policy(route, global);
    const auto response = fields({{"Cache-Control", "private=\"X-User, x-session\", max-age=60"},
                                  {"X-User", "alice"}, {"X-Session", "s1"}, {"Content-Type", "text/plain"}});
    const auto d = policy.decide_store(false, {}, {}, 200, response, T0, T0);
    REQUIRE(d.refused == Detail::None);
    const auto entry = policy.entry_for(d, 200, response, "body", {}, T0, T0);
    auto has = [](const cache::Entry& e, std::string_view name) {
        return std::any_of(e.headers.begin(), e.headers.end(), [&](const auto& h) { return h.first == name; });
    };
    CHECK_FALSE(has(entry, "X-User"));
    CHECK_FALSE(has(entry, "X-Session"));
    CHECK(has(entry, "Content-Type"));
    CHECK(has(entry, "Cache-Control"));
    const auto refreshed = policy.refreshed(entry, fields({{"X-User", "bob"}, {"ETag", "\"2\""}}), T0, T0);
    CHECK_FALSE(has(refreshed, "X-User"));
    CHECK(has(refreshed, "ETag"));
    // Unqualified private is still for one user only.
    CHECK(policy.decide_store(false, {}, {}, 200, fields({{"Cache-Control", "private, max-age=60"}}), T0, T0).refused ==
          Detail::Private);
}

TEST_CASE("policy: why a fetched response is not stored", "[policy]") {
    config::Cache global;
    config::RouteCache route;
    cache::Policy policy(route, global);
    const auto fresh = fields({{"Cache-Control", "max-age=60"}});
    CHECK(refused(policy, 200, fresh) == Detail::None);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "private, max-age=60"}})) == Detail::Private);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "no-store"}})) == Detail::NoStore);
    CHECK(refused(policy, 200, fresh, fields({{"Cache-Control", "no-store"}})) == Detail::RequestNoStore);
    CHECK(refused(policy, 200, fresh, fields({{"Authorization", "Bearer x"}})) == Detail::Authorization);
    CHECK(refused(policy, 302, fields({})) == Detail::NoFreshnessInfo);  // not cacheable by default
    CHECK(refused(policy, 200, fields({})) == Detail::StaleOnArrival);   // cacheable by default, but for 0 s
    CHECK(refused(policy, 200, fresh, {}, true) == Detail::Head);
    // The cache answers If-None-Match and Range itself from the whole response, which it stores;
    // If-Match is the origin's to answer, and that answer is not stored.
    CHECK(refused(policy, 200, fresh, fields({{"If-None-Match", "\"x\""}})) == Detail::None);
    CHECK(refused(policy, 200, fresh, fields({{"Range", "bytes=0-1"}})) == Detail::None);
    CHECK(refused(policy, 200, fresh, fields({{"If-Match", "\"x\""}})) == Detail::Conditional);
    CHECK(refused(policy, 304, fresh) == Detail::Status);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "max-age=60"}, {"Vary", "*"}})) == Detail::VaryStar);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "max-age=60"}, {"Age", "90"}})) == Detail::StaleOnArrival);
    // no-cache with a validator: stored to be revalidated on every use; without one, nothing to gain.
    CHECK(refused(policy, 200, fields({{"Cache-Control", "no-cache"}, {"ETag", "\"a\""}})) == Detail::None);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "no-cache"}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}})) ==
          Detail::None);
    CHECK(refused(policy, 200, fields({{"Cache-Control", "no-cache"}})) == Detail::StaleOnArrival);
    const auto cookie = fields({{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=1"}});
    CHECK(refused(policy, 200, cookie) == Detail::None);
    route.set_cookie = config::SetCookiePolicy::Refuse;
    CHECK(refused(policy, 200, cookie) == Detail::SetCookie);
    // The route's TTL gives freshness to a response that has none.
    route.default_ttl = seconds(10);
    CHECK(refused(policy, 302, fields({})) == Detail::None);
}

TEST_CASE("policy: the stored entry drops Set-Cookie unless the route stores it, and Cache-Status always",
          "[policy]") {
    config::Cache global;
    config::RouteCache route;
    cache::Policy policy(route, global);
    const auto response = fields({{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=1"}, {"Cache-Status", "up; hit"},
                                  {"Vary", "Accept-Language"}, {"X-Kept", "1"}});
    const auto request = fields({{"Accept-Language", "de"}});
    auto names = [&] {
        const auto d = policy.decide_store(false, {}, request, 200, response, T0, T0);
        auto e = policy.entry_for(d, 200, response, "b", request, T0 - seconds(1), T0);
        CHECK(e.request_time == (T0 - seconds(1)).time_since_epoch().count());
        CHECK(e.response_time == T0.time_since_epoch().count());
        CHECK(e.vary == std::vector<std::string>{"accept-language"});
        CHECK(e.variant == "accept-language=de");
        std::string out;
        for (const auto& [n, v] : e.headers) out += n + ";";
        return out;
    };
    CHECK(names() == "Cache-Control;Vary;X-Kept;");
    route.set_cookie = config::SetCookiePolicy::Store;
    CHECK(names() == "Cache-Control;Set-Cookie;Vary;X-Kept;");
}

TEST_CASE("policy: a stored response is fresh, then stale-while-revalidate, then must be revalidated",
          "[policy]") {
    config::Cache global;
    config::RouteCache route;
    route.stale_while_revalidate = seconds(30);
    cache::Policy policy(route, global);
    const auto s = stored_at(policy, 200, fields({{"Cache-Control", "max-age=60"}}));
    auto use_at = [&](int seconds_later, http::Fields request = {}) {
        const auto judged = policy.judge(s.entry, s.fields, T0 + http::Seconds{seconds_later});
        return policy.usability(cache::request_directives(request), judged);
    };
    CHECK(use_at(0) == http::Usability::Fresh);
    CHECK(use_at(59) == http::Usability::Fresh);
    CHECK(use_at(60) == http::Usability::StaleWhileRevalidate);
    CHECK(use_at(90) == http::Usability::StaleWhileRevalidate);
    CHECK(use_at(91) == http::Usability::MustRevalidate);
    CHECK(use_at(10, fields({{"Cache-Control", "no-cache"}})) == http::Usability::MustRevalidate);
    CHECK(use_at(10, fields({{"Pragma", "no-cache"}})) == http::Usability::MustRevalidate);
    CHECK(use_at(70, fields({{"Cache-Control", "max-stale=20"}})) == http::Usability::StaleAllowed);
}

TEST_CASE("policy: a failed origin is answered by stale-if-error, then by grace", "[policy]") {
    config::Cache global;
    config::RouteCache route;
    route.stale_if_error = seconds(20);
    route.grace = seconds(100);
    cache::Policy policy(route, global);
    const auto s = stored_at(policy, 200, fields({{"Cache-Control", "max-age=60"}}));
    auto on_error_at = [&](int seconds_later, const char* cc = "") {
        return policy.stale_on_error(cache::request_directives(*cc ? fields({{"Cache-Control", cc}}) : http::Fields{}),
                                     policy.judge(s.entry, s.fields, T0 + http::Seconds{seconds_later}), false);
    };
    CHECK(on_error_at(70) == Detail::StaleIfError);
    CHECK(on_error_at(80) == Detail::StaleIfError);
    CHECK(on_error_at(81) == Detail::Grace);
    CHECK(on_error_at(160) == Detail::Grace);
    CHECK(on_error_at(161) == Detail::None);
    CHECK(on_error_at(70, "stale-if-error=5") == Detail::Grace);  // the request's own window first
    const auto strict = stored_at(policy, 200, fields({{"Cache-Control", "max-age=60, must-revalidate"}}));
    CHECK(policy.stale_on_error({}, policy.judge(strict.entry, strict.fields, T0 + seconds(70)), false) == Detail::Grace);
}

TEST_CASE("policy: an origin that cannot be reached at all is answered by stale_if_disconnected", "[policy]") {
    config::Cache global;
    config::RouteCache route;  // stale_if_disconnected: 10 s by default, nothing else
    cache::Policy policy(route, global);
    auto at = [&](const char* cc, int seconds_later, bool unreachable) {
        const auto s = stored_at(policy, 200, fields({{"Cache-Control", cc}}));
        return policy.stale_on_error({}, policy.judge(s.entry, s.fields, T0 + http::Seconds{seconds_later}), unreachable);
    };
    CHECK(at("max-age=60", 70, true) == Detail::Disconnected);
    CHECK(at("max-age=60", 71, true) == Detail::None);   // past the window
    CHECK(at("max-age=60", 70, false) == Detail::None);  // reached, and it failed: stale-if-error's business
    for (const char* strict : {"max-age=60, must-revalidate", "max-age=60, proxy-revalidate", "s-maxage=60",
                               "no-cache, max-age=60"}) {
        INFO(strict);
        CHECK(at(strict, 65, true) == Detail::None);
    }
    route.stale_if_disconnected = seconds(0);  // off
    CHECK(at("max-age=60", 61, true) == Detail::None);
}

TEST_CASE("policy: the expiry keeps a response past its freshness for revalidation and its stale windows",
          "[policy]") {
    config::Cache global;
    global.keep = seconds(600);
    config::RouteCache route;
    cache::Policy policy(route, global);
    const auto t0_ms = milliseconds(T0.time_since_epoch()).count();
    auto expiry = [&](const char* cc) {
        return policy.decide_store(false, {}, {}, 200, fields({{"Cache-Control", cc}}), T0, T0).expiry_ms - t0_ms;
    };
    CHECK(expiry("max-age=60") == (60 + 600) * 1000);
    CHECK(expiry("max-age=60, stale-if-error=3600") == (60 + 3600) * 1000);
    route.grace = seconds(7200);
    CHECK(expiry("max-age=60") == (60 + 7200) * 1000);
}

TEST_CASE("policy: ttl_jitter moves the lifetime by at most its percentage, and the entry remembers it",
          "[policy]") {
    config::Cache global;
    global.ttl_jitter = 10;
    config::RouteCache route;
    double next = 1.0;
    cache::Policy policy(route, global, [&] { return next; });
    const auto response = fields({{"Cache-Control", "max-age=100"}});
    auto d = policy.decide_store(false, {}, {}, 200, response, T0, T0);
    CHECK(d.lifetime_jitter == 10);
    CHECK(d.judged.lifetime.count() == 110);
    next = -1.0;
    CHECK(policy.decide_store(false, {}, {}, 200, response, T0, T0).judged.lifetime.count() == 90);
    next = 1.0;
    const auto s = stored_at(policy, 200, response);
    CHECK(policy.judge(s.entry, s.fields, T0).lifetime.count() == 110);  // judged later with the same jitter
}

TEST_CASE("policy: a 304 refreshes the stored fields and restarts the clock, but not the body's own fields",
          "[policy]") {
    config::Cache global;
    config::RouteCache route;
    cache::Policy policy(route, global);
    const auto s = stored_at(policy, 200,
                             fields({{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Content-Length", "4"},
                                     {"Content-Encoding", "gzip"}, {"X-Version", "1"}}));
    const auto later = T0 + seconds(300);
    const auto merged = policy.refreshed(
        s.entry,
        fields({{"Cache-Control", "max-age=120"}, {"X-Version", "2"}, {"Content-Length", "0"},
                {"Content-Encoding", "br"}, {"Set-Cookie", "x=1"}}),
        later - seconds(1), later);
    http::Fields f;
    for (const auto& [n, v] : merged.headers) f.insert(n, v);
    CHECK(f["X-Version"] == "2");
    CHECK(f["Cache-Control"] == "max-age=120");
    CHECK(f["Content-Length"] == "4");
    CHECK(f["Content-Encoding"] == "gzip");
    CHECK(f.count("Set-Cookie") == 0);
    CHECK(f["ETag"] == "\"a\"");
    CHECK(merged.body == "body");
    const auto judged = policy.judge(merged, f, later);
    CHECK(judged.lifetime.count() == 120);
    CHECK(judged.age.count() == 1);  // the 304's own round trip, not the 300 s the old copy waited
}
