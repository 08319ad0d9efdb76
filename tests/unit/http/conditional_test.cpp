#include "cachalot/http/conditional.hpp"

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
}  // namespace

TEST_CASE("weak entity-tag comparison ignores W/ and nothing else") {
    CHECK(weak_etag_match("\"v1\"", "\"v1\""));
    CHECK(weak_etag_match("W/\"v1\"", "\"v1\""));
    CHECK(weak_etag_match("W/\"v1\"", "W/\"v1\""));
    CHECK_FALSE(weak_etag_match("\"v1\"", "\"V1\""));
    CHECK_FALSE(weak_etag_match("v1", "v1"));  // not an entity-tag
}

TEST_CASE("If-None-Match against a stored response, table") {
    struct Row {
        const char* inm;
        const char* stored_etag;
        bool expected;
    };
    auto row = GENERATE(values<Row>({
        {"\"a\"", "\"a\"", true},
        {"\"x\", W/\"a\"", "\"a\"", true},
        {"*", "\"a\"", true},
        {"\"b\"", "\"a\"", false},
        {"\"a,b\"", "\"a\"", false},  // a comma inside an entity-tag does not split it
        {"\"a\"", "", false},
    }));
    INFO(row.inm);
    Fields stored;
    if (*row.stored_etag) stored.insert("ETag", row.stored_etag);
    CHECK(not_modified(make({{"If-None-Match", row.inm}}), stored, kNow) == row.expected);
}

TEST_CASE("If-Modified-Since against a stored response") {
    auto stored = make({{"Last-Modified", format_http_date(kNow - 3600s)}});
    CHECK(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 60s)}}), stored, kNow));
    CHECK(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 3600s)}}), stored, kNow));
    CHECK_FALSE(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 7200s)}}), stored, kNow));
    CHECK_FALSE(not_modified(make({{"If-Modified-Since", "yesterday"}}), stored, kNow));
    CHECK_FALSE(not_modified(make({{"If-Modified-Since", format_http_date(kNow + 60s)}}), stored, kNow));
    // If-None-Match takes precedence: a mismatching tag is modified whatever the date says.
    auto tagged = make({{"ETag", "\"a\""}, {"Last-Modified", format_http_date(kNow - 3600s)}});
    CHECK_FALSE(not_modified(make({{"If-None-Match", "\"b\""}, {"If-Modified-Since", format_http_date(kNow)}}),
                             tagged, kNow));
}

TEST_CASE("If-Modified-Since against a stored response without Last-Modified uses its Date (RFC 9110 §13.1.3)") {
    auto stored = make({{"Date", format_http_date(kNow - 3600s)}});
    CHECK(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 60s)}}), stored, kNow));
    CHECK_FALSE(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 7200s)}}), stored, kNow));
    // Last-Modified, when there is one, is what counts.
    auto both = make({{"Date", format_http_date(kNow - 60s)}, {"Last-Modified", format_http_date(kNow - 3600s)}});
    CHECK(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 1800s)}}), both, kNow));
    // Neither: nothing to compare, so modified.
    CHECK_FALSE(not_modified(make({{"If-Modified-Since", format_http_date(kNow - 60s)}}), Fields{}, kNow));
}

TEST_CASE("conditions the cache answers and preconditions it leaves to the origin are told apart") {
    for (const char* name : {"if-none-match", "If-Modified-Since", "Range", "If-Range"}) {
        INFO(name);
        CHECK(has_cache_condition(make({{name, "x"}})));
        CHECK_FALSE(has_origin_precondition(make({{name, "x"}})));
    }
    for (const char* name : {"If-Match", "if-unmodified-since"}) {
        INFO(name);
        CHECK(has_origin_precondition(make({{name, "x"}})));
        CHECK_FALSE(has_cache_condition(make({{name, "x"}})));
    }
    CHECK_FALSE(has_cache_condition(make({{"Accept", "*/*"}})));
    CHECK_FALSE(has_origin_precondition(make({{"Accept", "*/*"}})));
}
