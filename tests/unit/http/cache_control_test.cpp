#include "cachalot/http/cache_control.hpp"

#include <catch2/catch.hpp>
#include <optional>

using namespace cachalot::http;
using namespace std::chrono;
using std::optional;

namespace {
const Time kNow = sys_days{2026y / November / 23} + 12h;
optional<Seconds> s(long long v) { return Seconds{v}; }
}  // namespace

TEST_CASE("Cache-Control: delta directives, table") {
    struct Row {
        const char* header;
        optional<Seconds> max_age, s_maxage;
    };
    auto row = GENERATE(values<Row>({
        {"max-age=60", s(60), {}},
        {"MAX-AGE=60", s(60), {}},                        // names are case-insensitive
        {"  max-age = 60 ", s(60), {}},                   // whitespace around the value
        {"max-age=\"60\"", s(60), {}},                    // quoted-string form is accepted
        {"public, max-age=60, s-maxage=120", s(60), s(120)},
        {"max-age=abc", s(0), {}},                        // invalid number: stale at once
        {"max-age=-1", s(0), {}},
        {"max-age=", s(0), {}},
        {"max-age", s(0), {}},                            // no value at all
        {"max-age=60, max-age=60", s(60), {}},            // a repeat that agrees
        {"max-age=60, max-age=120", s(0), {}},            // conflicting repeats: stale
        {"max-age=99999999999999", kMaxDelta, {}},        // clamped at 2^31
        {"x-ext=1, max-age=5, another-ext=\"a, b\"", s(5), {}},
        {"no-cache=\"a, max-age=5\"", {}, {}},            // commas inside quotes do not split
        {"", {}, {}},
    }));
    INFO(row.header);
    auto cc = parse_cache_control(row.header);
    CHECK(cc.max_age == row.max_age);
    CHECK(cc.s_maxage == row.s_maxage);
}

TEST_CASE("Cache-Control: flags and field lists") {
    auto cc = parse_cache_control(
        "no-cache=\"Set-Cookie, X-Debug\", private=\"Authorization\", public, must-revalidate, proxy-revalidate, "
        "no-transform, immutable, must-understand, stale-while-revalidate=30, stale-if-error=600");
    CHECK_FALSE(cc.no_cache);  // the qualified form is not the bare one
    CHECK(cc.no_cache_fields == std::vector<std::string>{"set-cookie", "x-debug"});
    CHECK_FALSE(cc.private_);
    CHECK(cc.private_fields == std::vector<std::string>{"authorization"});
    CHECK(cc.public_);
    CHECK(cc.must_revalidate);
    CHECK(cc.proxy_revalidate);
    CHECK(cc.no_transform);
    CHECK(cc.immutable);
    CHECK(cc.must_understand);
    CHECK(cc.stale_while_revalidate == s(30));
    CHECK(cc.stale_if_error == s(600));

    auto bare = parse_cache_control("no-cache, private, no-store");
    CHECK(bare.no_cache);
    CHECK(bare.private_);
    CHECK(bare.no_store);
}

TEST_CASE("Cache-Control: request directives") {
    auto cc = parse_cache_control("max-stale, min-fresh=10, only-if-cached, max-age=0");
    CHECK(cc.max_stale == kMaxDelta);  // bare max-stale: any staleness
    CHECK(cc.min_fresh == s(10));
    CHECK(cc.only_if_cached);
    CHECK(cc.max_age == s(0));
    CHECK(parse_cache_control("max-stale=30").max_stale == s(30));
}

TEST_CASE("HTTP dates: the three formats name the same instant") {
    const Time expected = sys_days{1994y / November / 6} + 8h + 49min + 37s;
    CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", kNow) == expected);
    CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", kNow) == expected);
    CHECK(parse_http_date("Sun Nov  6 08:49:37 1994", kNow) == expected);
}

TEST_CASE("HTTP dates: day and month names and GMT in any case are read (RFC 9110 §5.6.7)") {
    const Time expected = sys_days{1994y / November / 6} + 8h + 49min + 37s;
    auto text = GENERATE(as<std::string>{}, "sun, 06 nov 1994 08:49:37 gmt", "SUN, 06 NOV 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 Gmt", "SUNDAY, 06-nov-94 08:49:37 gmt", "sun NOV  6 08:49:37 1994");
    INFO(text);
    CHECK(parse_http_date(text, kNow) == expected);
}

TEST_CASE("HTTP dates: invalid ones are refused") {
    auto text = GENERATE(as<std::string>{}, "", "0", "-1", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
                         "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 24:00:00 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
                         "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "tomorrow");
    INFO(text);
    CHECK_FALSE(parse_http_date(text, kNow));
}

TEST_CASE("HTTP dates: RFC 850 two-digit years are never more than 50 years ahead") {
    CHECK(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", kNow) == sys_days{2070y / January / 1});
    CHECK(parse_http_date("Friday, 01-Jan-77 00:00:00 GMT", kNow) == sys_days{1977y / January / 1});
}

TEST_CASE("HTTP dates: a leap second reads as the second before it") {
    CHECK(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT", kNow) == sys_days{2016y / December / 31} + 23h + 59min + 59s);
}

TEST_CASE("HTTP dates: format and parse round-trip") {
    CHECK(format_http_date(sys_days{1994y / November / 6} + 8h + 49min + 37s) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(parse_http_date(format_http_date(kNow), kNow) == kNow);
}

TEST_CASE("Cache-Control: malformed directive lists are flagged") {
    struct Row {
        const char* header;
        bool malformed;
    };
    auto row = GENERATE(values<Row>({
        {"max-age=60, no-store", false},
        {"private=\"Set-Cookie, X-A\", max-age=60", false},
        {"ext=\"a\\\"b\", max-age=60", false},          // quoted-pair inside
        {"max-age=60, ,, public", false},                  // empty list elements are allowed
        {"", false},
        {"x=\"unterminated, no-store", true},
        {"x=\"a\" b, no-store", true},                       // text after the closing quote
        {"max age=60", true},                               // a space inside a name
        {"max-age=60, =5", true},                           // a value without a name
        {"no-store\x01", true},                             // a control character in a name
    }));
    INFO(row.header);
    CHECK(parse_cache_control(row.header).malformed == row.malformed);
}

TEST_CASE("targeted fields: a Dictionary (RFC 8941) read as the Cache-Control it stands for (RFC 9213)") {
    struct Row {
        const char* value;
        std::optional<std::string> cache_control;
    };
    auto row = GENERATE(values<Row>({
        {"max-age=60", "max-age=60"},
        {"max-age=60, s-maxage=30, public", "max-age=60, s-maxage=30, public"},
        {"no-store", "no-store"},
        {"no-store=?0, max-age=5", "max-age=5"},  // false: absent
        {"must-revalidate=?1", "must-revalidate"},
        {"max-age=60;foo=bar, x-unknown=(1 2), y=:YWJj:, z=\"s\"", "max-age=60"},  // parameters, unknown members
        {"max-age=1, max-age=9", "max-age=9"},                                       // a later key wins
        {"private=\"set-cookie\"", "private=\"set-cookie\""},
        {"", ""},
        // Not a Dictionary: ignored as a whole.
        {"max-age=60,", std::nullopt},
        {"Max-Age=60", std::nullopt},  // keys are lower case
        {"max-age=\"60", std::nullopt},
        {"max-age=60 s-maxage=1", std::nullopt},
        {"max-age=1234567890123456", std::nullopt},  // more than 15 digits
        // A known directive of the wrong type: ignored as a whole.
        {"max-age=\"60\"", std::nullopt},
        {"max-age=60.0", std::nullopt},
        {"max-age=-1", std::nullopt},
        {"max-age=?1", std::nullopt},
        {"no-store=1", std::nullopt},
        {"public=\"yes\"", std::nullopt},
        {"max-age=60, no-store=tok", std::nullopt},
    }));
    INFO(row.value);
    CHECK(targeted_cache_control(row.value) == row.cache_control);
}
