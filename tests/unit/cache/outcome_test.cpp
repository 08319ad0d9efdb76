// One typed outcome per request: rendered as Cache-Status in one fixed order, recorded in the
// metrics under the same words.

#include "cachalot/cache/outcome.hpp"
#include "cachalot/metrics/metrics.hpp"

#include <catch2/catch.hpp>

// Designated initializers leave the other members to their defaults, on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace cachalot;
using cache::Detail;
using cache::Fwd;
using cache::Outcome;
using cache::Result;

TEST_CASE("outcome: Cache-Status renders each kind of answer", "[outcome]") {
    auto render = [](const Outcome& o) { return cache::cache_status_entry(o, "cachalot"); };
    CHECK(render({.result = Result::Hit, .ttl = 42}) == "cachalot; hit; ttl=42");
    CHECK(render({.result = Result::Hit, .ttl = -3, .detail = Detail::StaleWhileRevalidate}) ==
          "cachalot; hit; ttl=-3; detail=stale-while-revalidate");
    CHECK(render({.result = Result::Bypass, .fwd = Fwd::Bypass}) == "cachalot; fwd=bypass");
    CHECK(render({.result = Result::Bypass, .fwd = Fwd::Bypass, .detail = Detail::RequestBody}) ==
          "cachalot; fwd=bypass; detail=request-body");
    CHECK(render({.fwd = Fwd::UriMiss, .fwd_status = 200, .stored = true, .ttl = 60}) ==
          "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    CHECK(render({.fwd = Fwd::VaryMiss, .fwd_status = 200, .collapsed = true, .ttl = 59}) ==
          "cachalot; fwd=vary-miss; fwd-status=200; collapsed; ttl=59");
    CHECK(render({.fwd = Fwd::Stale, .collapsed = true, .detail = Detail::StaleIfError}) ==
          "cachalot; fwd=stale; collapsed; detail=stale-if-error");
    CHECK(render({.fwd = Fwd::Request, .fwd_status = 503, .detail = Detail::Grace}) ==
          "cachalot; fwd=request; fwd-status=503; detail=grace");
    CHECK(render({.fwd = Fwd::UriMiss, .detail = Detail::OriginUnavailable}) ==
          "cachalot; fwd=uri-miss; detail=origin-unavailable");
    CHECK(render({.result = Result::Revalidated, .fwd = Fwd::Stale, .fwd_status = 304}) ==
          "cachalot; fwd=stale; fwd-status=304");
}

TEST_CASE("outcome: the key is a quoted string, its separators shown as spaces", "[outcome]") {
    Outcome o{.result = Result::Hit, .ttl = 1, .key = "GET\nhttp://h/a\"b\\c\x1fx"};
    CHECK(cache::cache_status_entry(o, "cachalot") == R"(cachalot; hit; ttl=1; key="GET http://h/a\"b\\c x")");
}

TEST_CASE("outcome: every word of a vocabulary is distinct, and the reason ranges hold what they say", "[outcome]") {
    for (std::size_t i = 1; i < cache::kDetailNames.size(); ++i) {
        CHECK_FALSE(cache::kDetailNames[i].empty());
        for (std::size_t j = 0; j < i; ++j) CHECK(cache::kDetailNames[i] != cache::kDetailNames[j]);
        CHECK(cache::kDetailNames[i] != cache::kStoredName);
    }
    CHECK(cache::is_stale_reason(Detail::Grace));
    CHECK_FALSE(cache::is_stale_reason(Detail::Method));
    CHECK(cache::is_not_stored_reason(Detail::OnlyIfCached));
    CHECK(cache::is_not_stored_reason(Detail::Method));
    CHECK_FALSE(cache::is_not_stored_reason(Detail::RequestBody));
    CHECK_FALSE(cache::is_not_stored_reason(Detail::StaleIfError));
}

namespace {
double value(const metrics::Metrics& m, const std::string& series) {
    const auto text = m.serialize();
    const auto at = text.find(series + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + series.size() + 1));
}
}  // namespace

TEST_CASE("outcome: recorded once, under the words Cache-Status uses", "[outcome]") {
    metrics::Metrics m({"api"}, {"origin"});
    const auto& s = m.route(0);
    s.record({.result = Result::Hit, .ttl = 5});
    s.record({.fwd = Fwd::UriMiss, .fwd_status = 200, .stored = true, .ttl = 5});
    s.record({.fwd = Fwd::UriMiss, .fwd_status = 200, .detail = Detail::Private});
    s.record({.fwd = Fwd::Stale, .collapsed = true, .detail = Detail::StaleIfError});
    s.record({.fwd = Fwd::UriMiss, .fwd_status = 200, .collapsed = true, .ttl = 5});
    s.record({.result = Result::Bypass, .fwd = Fwd::Bypass, .detail = Detail::RequestBody});
    CHECK(value(m, R"(cachalot_cache_requests_total{result="hit",route="api"})") == 1);
    CHECK(value(m, R"(cachalot_cache_requests_total{result="miss",route="api"})") == 4);
    CHECK(value(m, R"(cachalot_cache_requests_total{result="bypass",route="api"})") == 1);
    CHECK(value(m, R"(cachalot_cache_store_total{outcome="stored",route="api"})") == 1);
    CHECK(value(m, R"(cachalot_cache_store_total{outcome="private",route="api"})") == 1);
    CHECK(value(m, R"(cachalot_stale_served_total{reason="stale-if-error",route="api"})") == 1);
    // Served by another request's fetch: the collapsed miss, not the collapsed stale answer.
    CHECK(value(m, R"(cachalot_coalesced_requests_total{route="api"})") == 1);
    // A bypass is not a response fetched for the cache.
    CHECK(m.serialize().find("request-body") == std::string::npos);
}
