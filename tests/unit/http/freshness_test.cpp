#include "cachalot/http/freshness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::http;
using namespace std::chrono;

namespace {

const Time kNow = sys_days{2026y / November / 23} + 12h;

Fields make(std::initializer_list<std::pair<const char*, std::string>> list) {
    Fields f;
    for (auto& [n, v] : list) f.insert(n, v);
    return f;
}

std::string date(Seconds offset) { return format_http_date(kNow + offset); }

Freshness lifetime_of(unsigned status, const Fields& response, Seconds heuristic_limit = 86400s) {
    return freshness_lifetime(status, response, cache_control_of(response), kNow, heuristic_limit);
}

}  // namespace

TEST_CASE("freshness lifetime: each source, in RFC 9111 order") {
    struct Row {
        const char* name;
        unsigned status;
        Fields response;
        Seconds lifetime;
        FreshnessSource source;
    };
    auto row = GENERATE(values<Row>({
        {"s-maxage wins over max-age", 200, make({{"Cache-Control", "max-age=60, s-maxage=30"}}), 30s,
         FreshnessSource::SMaxAge},
        {"max-age wins over Expires", 200,
         make({{"Cache-Control", "max-age=60"}, {"Date", date(0s)}, {"Expires", date(3600s)}}), 60s,
         FreshnessSource::MaxAge},
        {"Expires minus Date", 200, make({{"Date", date(-100s)}, {"Expires", date(500s)}}), 600s,
         FreshnessSource::Expires},
        {"Expires without Date uses the response time", 200, make({{"Expires", date(300s)}}), 300s,
         FreshnessSource::Expires},
        {"Expires in the past", 200, make({{"Date", date(0s)}, {"Expires", date(-10s)}}), 0s,
         FreshnessSource::Expires},
        {"invalid Expires means expired", 200, make({{"Expires", "0"}}), 0s, FreshnessSource::Expires},
        {"two Expires fields mean expired", 200, make({{"Expires", date(300s)}, {"Expires", date(600s)}}), 0s,
         FreshnessSource::Expires},
        {"heuristic: 10 % of the time since Last-Modified", 200,
         make({{"Date", date(0s)}, {"Last-Modified", date(-1000s)}}), 100s, FreshnessSource::Heuristic},
        {"heuristic capped by the limit", 404, make({{"Date", date(0s)}, {"Last-Modified", date(-10'000'000s)}}),
         86400s, FreshnessSource::Heuristic},
        {"no heuristic for a status not cacheable by default", 302,
         make({{"Date", date(0s)}, {"Last-Modified", date(-1000s)}}), 0s, FreshnessSource::None},
        {"a heuristic for a status not cacheable by default marked public", 302,
         make({{"Cache-Control", "public"}, {"Date", date(0s)}, {"Last-Modified", date(-1000s)}}), 100s,
         FreshnessSource::Heuristic},
        {"no heuristic without Last-Modified", 200, make({{"Date", date(0s)}}), 0s, FreshnessSource::None},
        {"Last-Modified after Date gives nothing", 200, make({{"Date", date(0s)}, {"Last-Modified", date(60s)}}),
         0s, FreshnessSource::None},
        {"invalid max-age is stale", 200, make({{"Cache-Control", "max-age=soon"}, {"Expires", date(600s)}}), 0s,
         FreshnessSource::MaxAge},
    }));
    INFO(row.name);
    auto f = lifetime_of(row.status, row.response);
    CHECK(f.lifetime == row.lifetime);
    CHECK(f.source == row.source);
}

TEST_CASE("freshness lifetime: a heuristic limit of 0 turns heuristics off") {
    auto f = lifetime_of(200, make({{"Date", date(0s)}, {"Last-Modified", date(-1000s)}}), 0s);
    CHECK(f.source == FreshnessSource::None);
}

TEST_CASE("current age: apparent age, Age header and response delay (RFC 9111 §4.2.3)") {
    struct Row {
        const char* name;
        Fields response;
        Seconds request_offset, response_offset, now_offset;
        Seconds age;
    };
    auto row = GENERATE(values<Row>({
        {"fresh from the origin", make({{"Date", date(0s)}}), 0s, 0s, 0s, 0s},
        {"resident time adds up", make({{"Date", date(0s)}}), 0s, 0s, 42s, 42s},
        {"Age from an upstream cache", make({{"Date", date(0s)}, {"Age", "100"}}), 0s, 0s, 10s, 110s},
        {"a slow origin: the response delay counts", make({{"Date", date(0s)}, {"Age", "5"}}), -3s, 0s, 0s, 8s},
        {"a Date in the past: apparent age", make({{"Date", date(-30s)}}), 0s, 0s, 0s, 30s},
        {"the larger of apparent and corrected age", make({{"Date", date(-30s)}, {"Age", "40"}}), -2s, 0s, 0s, 42s},
        {"a Date in the future is not a negative age", make({{"Date", date(3600s)}}), 0s, 0s, 0s, 0s},
        {"an invalid Age makes it as old as can be", make({{"Date", date(0s)}, {"Age", "old"}}), 0s, 0s, 5s, kMaxDelta},
        {"a list Age counts by its first member", make({{"Date", date(0s)}, {"Age", "5, 0"}}), 0s, 0s, 0s, 5s},
        {"a list Age whose first member is invalid", make({{"Date", date(0s)}, {"Age", "old, 0"}}), 0s, 0s, 0s, kMaxDelta},
        {"two Age lines: the first counts", make({{"Date", date(0s)}, {"Age", "7"}, {"Age", "0"}}), 0s, 0s, 0s, 7s},
        {"two Age lines, the first invalid", make({{"Date", date(0s)}, {"Age", "-1"}, {"Age", "0"}}), 0s, 0s, 0s, kMaxDelta},
        {"an empty Age", make({{"Date", date(0s)}, {"Age", ""}}), 0s, 0s, 0s, kMaxDelta},
        {"no Date: the response time stands in", make({}), 0s, 0s, 7s, 7s},
    }));
    INFO(row.name);
    CHECK(current_age(row.response, kNow + row.request_offset, kNow + row.response_offset, kNow + row.now_offset) ==
          row.age);
}

TEST_CASE("storability for a shared cache, table") {
    struct Row {
        const char* name;
        const char* method;
        unsigned status;
        Fields request;
        Fields response;
        NotStorable expected;
    };
    auto row = GENERATE(values<Row>({
        {"plain GET 200 with max-age", "GET", 200, make({}), make({{"Cache-Control", "max-age=60"}}),
         NotStorable::None},
        {"HEAD is stored too", "HEAD", 200, make({}), make({{"Cache-Control", "max-age=60"}}), NotStorable::None},
        {"POST is not", "POST", 200, make({}), make({{"Cache-Control", "max-age=60"}}), NotStorable::Method},
        {"a 206 without its place in the whole is not", "GET", 206, make({}), make({{"Cache-Control", "max-age=60"}}),
         NotStorable::Status},
        {"nor one of a whole of unknown length", "GET", 206, make({}),
         make({{"Cache-Control", "max-age=60"}, {"Content-Range", "bytes 0-9/*"}}), NotStorable::Status},
        {"a 206 of one part of a known whole is", "GET", 206, make({}),
         make({{"Cache-Control", "max-age=60"}, {"Content-Range", "bytes 0-9/100"}}), NotStorable::None},
        {"no-store in the response", "GET", 200, make({}), make({{"Cache-Control", "max-age=60, no-store"}}),
         NotStorable::ResponseNoStore},
        {"no-store in the request", "GET", 200, make({{"Cache-Control", "no-store"}}),
         make({{"Cache-Control", "max-age=60"}}), NotStorable::RequestNoStore},
        {"private", "GET", 200, make({}), make({{"Cache-Control", "private, max-age=60"}}), NotStorable::Private},
        {"private with fields: stored (without them)", "GET", 200, make({}),
         make({{"Cache-Control", "private=\"Set-Cookie\", max-age=60"}}), NotStorable::None},
        {"Authorization without permission", "GET", 200, make({{"Authorization", "Bearer x"}}),
         make({{"Cache-Control", "max-age=60"}}), NotStorable::Authorization},
        {"Authorization with public", "GET", 200, make({{"Authorization", "Bearer x"}}),
         make({{"Cache-Control", "public, max-age=60"}}), NotStorable::None},
        {"Authorization with s-maxage", "GET", 200, make({{"Authorization", "Bearer x"}}),
         make({{"Cache-Control", "s-maxage=60"}}), NotStorable::None},
        {"Authorization with must-revalidate", "GET", 200, make({{"Authorization", "Bearer x"}}),
         make({{"Cache-Control", "must-revalidate, max-age=60"}}), NotStorable::None},
        {"302 without freshness information", "GET", 302, make({}), make({}), NotStorable::NoFreshness},
        {"302 with Expires", "GET", 302, make({}), make({{"Expires", date(60s)}}), NotStorable::None},
        {"200 without anything: heuristically cacheable", "GET", 200, make({}), make({}), NotStorable::None},
        {"404 is cacheable by default", "GET", 404, make({}), make({}), NotStorable::None},
        {"500 needs explicit freshness", "GET", 500, make({}), make({}), NotStorable::NoFreshness},
        {"must-understand with an understood status: stored despite no-store", "GET", 200, make({}),
         make({{"Cache-Control", "must-understand, no-store, max-age=60"}}), NotStorable::None},
        {"must-understand with a status this cache does not know: not stored", "GET", 299, make({}),
         make({{"Cache-Control", "must-understand, no-store, max-age=60"}}), NotStorable::Status},
        {"must-understand with 418 (reserved): not stored", "GET", 418, make({}),
         make({{"Cache-Control", "must-understand, max-age=60"}}), NotStorable::Status},
        {"must-understand does not override the request's no-store", "GET", 200,
         make({{"Cache-Control", "no-store"}}), make({{"Cache-Control", "must-understand, no-store, max-age=60"}}),
         NotStorable::RequestNoStore},
        {"no-store alone on an unknown status", "GET", 299, make({}), make({{"Cache-Control", "no-store, max-age=60"}}),
         NotStorable::ResponseNoStore},
        {"no-cache may be stored (it is revalidated on use)", "GET", 200, make({}),
         make({{"Cache-Control", "no-cache"}}), NotStorable::None},
        {"an unterminated quoted string cannot hide a later no-store", "GET", 200, make({}),
         make({{"Cache-Control", "max-age=60, x=\"unterminated, no-store"}}), NotStorable::MalformedCacheControl},
        {"a malformed Cache-Control is not trusted", "GET", 200, make({}),
         make({{"Cache-Control", "max-age=60, x=\"a\"junk"}}), NotStorable::MalformedCacheControl},
    }));
    INFO(row.name);
    CHECK(storability(row.method, row.status, row.request, cache_control_of(row.request), row.response,
                      cache_control_of(row.response)) == row.expected);
}

TEST_CASE("usability of a stored response, table") {
    struct Row {
        const char* name;
        const char* request_cc;
        bool pragma;
        const char* response_cc;
        Seconds lifetime, age;
        Usability expected;
    };
    auto row = GENERATE(values<Row>({
        {"fresh", "", false, "max-age=60", 60s, 10s, Usability::Fresh},
        {"stale", "", false, "max-age=60", 60s, 60s, Usability::MustRevalidate},
        {"response no-cache", "", false, "no-cache, max-age=60", 60s, 0s, Usability::MustRevalidate},
        {"request no-cache", "no-cache", false, "max-age=60", 60s, 0s, Usability::MustRevalidate},
        {"Pragma: no-cache without Cache-Control", "", true, "max-age=60", 60s, 0s, Usability::MustRevalidate},
        {"request max-age older than allowed", "max-age=5", false, "max-age=60", 60s, 10s,
         Usability::MustRevalidate},
        {"request max-age within", "max-age=20", false, "max-age=60", 60s, 10s, Usability::Fresh},
        {"request min-fresh not met", "min-fresh=55", false, "max-age=60", 60s, 10s, Usability::MustRevalidate},
        {"request min-fresh met", "min-fresh=30", false, "max-age=60", 60s, 10s, Usability::Fresh},
        {"max-stale covers the staleness", "max-stale=30", false, "max-age=60", 60s, 80s, Usability::StaleAllowed},
        {"max-stale too short", "max-stale=10", false, "max-age=60", 60s, 80s, Usability::MustRevalidate},
        {"bare max-stale: any staleness", "max-stale", false, "max-age=60", 60s, 100000s, Usability::StaleAllowed},
        {"must-revalidate beats max-stale", "max-stale", false, "max-age=60, must-revalidate", 60s, 80s,
         Usability::MustRevalidate},
        {"proxy-revalidate beats max-stale", "max-stale", false, "max-age=60, proxy-revalidate", 60s, 80s,
         Usability::MustRevalidate},
        {"s-maxage implies proxy-revalidate", "max-stale", false, "s-maxage=60", 60s, 80s,
         Usability::MustRevalidate},
        {"stale-while-revalidate window covers the staleness", "", false, "max-age=60, stale-while-revalidate=30",
         60s, 85s, Usability::StaleWhileRevalidate},
        {"stale-while-revalidate window passed", "", false, "max-age=60, stale-while-revalidate=30", 60s, 91s,
         Usability::MustRevalidate},
        {"stale-while-revalidate does not override must-revalidate", "", false,
         "max-age=60, must-revalidate, stale-while-revalidate=30", 60s, 70s, Usability::MustRevalidate},
        {"stale-while-revalidate lifts s-maxage's ban", "", false, "s-maxage=60, stale-while-revalidate=30", 60s,
         70s, Usability::StaleWhileRevalidate},
        {"request no-cache beats stale-while-revalidate", "no-cache", false, "max-age=60, stale-while-revalidate=30",
         60s, 70s, Usability::MustRevalidate},
        {"request min-fresh beats stale-while-revalidate", "min-fresh=1", false,
         "max-age=60, stale-while-revalidate=30", 60s, 70s, Usability::MustRevalidate},
        {"stale-while-revalidate=0 is no window", "", false, "max-age=60, stale-while-revalidate=0", 60s, 60s,
         Usability::MustRevalidate},
    }));
    INFO(row.name);
    CHECK(usability(parse_cache_control(row.request_cc), row.pragma, parse_cache_control(row.response_cc),
                    row.lifetime, row.age) == row.expected);
}

TEST_CASE("the route's default stale-while-revalidate applies when the response sets none", "[freshness]") {
    auto none = parse_cache_control("");
    CHECK(usability(none, false, parse_cache_control("max-age=60"), 60s, 70s, 20s) == Usability::StaleWhileRevalidate);
    CHECK(usability(none, false, parse_cache_control("max-age=60"), 60s, 81s, 20s) == Usability::MustRevalidate);
    // The response's own window wins over the default, shorter or longer.
    CHECK(usability(none, false, parse_cache_control("max-age=60, stale-while-revalidate=5"), 60s, 70s, 20s) ==
          Usability::MustRevalidate);
}

TEST_CASE("stale-if-error: request directive, then response directive, then route default, then grace",
          "[freshness]") {
    struct Row {
        const char* name;
        const char* request_cc;
        const char* response_cc;
        Seconds staleness, default_sie, grace;
        StaleReason expected;
    };
    auto row = GENERATE(values<Row>({
        {"response window covers it", "", "max-age=60, stale-if-error=300", 100s, 0s, 0s, StaleReason::StaleIfError},
        {"response window passed", "", "max-age=60, stale-if-error=300", 301s, 0s, 0s, StaleReason::None},
        {"request window replaces the response's", "stale-if-error=10", "stale-if-error=300", 100s, 0s, 0s,
         StaleReason::None},
        {"request window alone", "stale-if-error=200", "max-age=60", 100s, 0s, 0s, StaleReason::StaleIfError},
        {"route default when nothing is said", "", "max-age=60", 100s, 120s, 0s, StaleReason::StaleIfError},
        {"nothing allows it", "", "max-age=60", 1s, 0s, 0s, StaleReason::None},
        {"must-revalidate forbids stale-if-error", "", "max-age=60, must-revalidate, stale-if-error=300", 10s, 0s,
         0s, StaleReason::None},
        {"no-cache forbids stale-if-error", "", "no-cache, stale-if-error=300", 10s, 0s, 0s, StaleReason::None},
        {"grace ignores must-revalidate", "", "max-age=60, must-revalidate", 10s, 0s, 60s, StaleReason::Grace},
        {"grace passed", "", "max-age=60", 61s, 0s, 60s, StaleReason::None},
    }));
    INFO(row.name);
    CHECK(stale_on_error(parse_cache_control(row.request_cc), parse_cache_control(row.response_cc), row.staleness,
                         row.default_sie, row.grace) == row.expected);
}

TEST_CASE("stale when disconnected: after stale-if-error, before grace, never past the strict directives",
          "[freshness]") {
    const auto none = parse_cache_control("");
    auto reason = [&](const char* response_cc, Seconds staleness, Seconds sie, Seconds grace) {
        return stale_on_error(none, parse_cache_control(response_cc), staleness, sie, grace, 10s);
    };
    CHECK(reason("max-age=60", 10s, 0s, 0s) == StaleReason::Disconnected);
    CHECK(reason("max-age=60", 11s, 0s, 0s) == StaleReason::None);
    CHECK(reason("max-age=60", 5s, 30s, 0s) == StaleReason::StaleIfError);  // the longer, explicit window first
    CHECK(reason("max-age=60", 20s, 0s, 60s) == StaleReason::Grace);
    CHECK(reason("max-age=60, s-maxage=60", 5s, 0s, 0s) == StaleReason::None);
    CHECK(reason("max-age=60, must-revalidate", 5s, 0s, 0s) == StaleReason::None);
    CHECK(reason("max-age=60, proxy-revalidate", 5s, 0s, 0s) == StaleReason::None);
    CHECK(reason("no-cache", 5s, 0s, 0s) == StaleReason::None);
    CHECK(stale_on_error(parse_cache_control("no-cache"), parse_cache_control("max-age=60"), 5s, 0s, 0s, 10s) ==
          StaleReason::None);  // the client asked for the origin's word
}
