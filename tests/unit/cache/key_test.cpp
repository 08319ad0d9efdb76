#include "cachalot/cache/key.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using KeyRules = config::RouteKey;
using cache::normalized_url;
using cache::primary_key;

namespace {

http::Fields make(std::initializer_list<std::pair<const char*, const char*>> list) {
    http::Fields f;
    for (auto& [n, v] : list) f.insert(n, v);
    return f;
}

std::string key(std::string_view method, std::string_view host, std::string_view target, const KeyRules& rules = {},
                const http::Fields& request = {}) {
    auto authority = http::parse_authority(host);
    REQUIRE(authority);
    return primary_key(method, normalized_url("http", *authority, target, rules), request, rules);
}

}  // namespace

TEST_CASE("primary key: requests for one resource share a key") {
    struct Row {
        const char* a_host;
        const char* a_target;
        const char* b_host;
        const char* b_target;
    };
    auto row = GENERATE(values<Row>({
        {"API.Example.com", "/x", "api.example.com", "/x"},            // host case
        {"api.example.com:80", "/x", "api.example.com", "/x"},         // default port
        {"api.example.com.", "/x", "api.example.com", "/x"},           // trailing dot
        {"h", "/a%2fb", "h", "/a%2Fb"},                                // percent-encoding case
        {"h", "/%7Euser/%41", "h", "/~user/A"},                        // unreserved characters decoded
        {"h", "/x?b=2&a=1", "h", "/x?a=1&b=2"},                        // query order
        {"h", "/x?", "h", "/x"},                                       // empty query
        {"h", "/x?a=1&&b=2", "h", "/x?a=1&b=2"},                       // empty parameter
    }));
    INFO(row.a_host << row.a_target << " vs " << row.b_host << row.b_target);
    CHECK(key("GET", row.a_host, row.a_target) == key("GET", row.b_host, row.b_target));
}

TEST_CASE("primary key: different resources never share a key") {
    struct Row {
        const char* a_host;
        const char* a_target;
        const char* b_host;
        const char* b_target;
    };
    auto row = GENERATE(values<Row>({
        {"h", "/x", "h", "/X"},                 // paths are case-sensitive
        {"h", "/a/../b", "h", "/b"},            // dot segments are the origin's business
        {"h", "/a%2Fb", "h", "/a/b"},           // an encoded slash is not a slash
        {"h:8080", "/x", "h", "/x"},            // another port
        {"h", "/x?a=1", "h", "/x?a=2"},
        {"h", "/x?a=1&a=2", "h", "/x?a=2"},
        {"h", "/x", "g", "/x"},
    }));
    INFO(row.a_host << row.a_target << " vs " << row.b_host << row.b_target);
    CHECK(key("GET", row.a_host, row.a_target) != key("GET", row.b_host, row.b_target));
}

TEST_CASE("primary key: HEAD shares GET's key, other methods have their own") {
    CHECK(key("HEAD", "h", "/x") == key("GET", "h", "/x"));
    CHECK(key("OPTIONS", "h", "/x") != key("GET", "h", "/x"));
    const auto h = *http::parse_authority("h:443", "https");
    CHECK(primary_key("GET", normalized_url("https", h, "/x", {}), {}, {}) == "GET https://h/x");
    CHECK(primary_key("GET", normalized_url("https", h, "/x", {}), {}, {}) != primary_key("GET", normalized_url("http", h, "/x", {}), {}, {}));
}

TEST_CASE("primary key: route rules filter and keep the query order") {
    KeyRules rules;
    rules.ignore_query_params = {"utm_*", "fbclid"};
    CHECK(key("GET", "h", "/x?utm_source=a&id=1&fbclid=z&utm_medium=b", rules) == key("GET", "h", "/x?id=1", rules));
    CHECK(key("GET", "h", "/x?fbclidx=1", rules) != key("GET", "h", "/x", rules));
    KeyRules unsorted;
    unsorted.sort_query = false;
    CHECK(key("GET", "h", "/x?b=2&a=1", unsorted) != key("GET", "h", "/x?a=1&b=2", unsorted));
}

TEST_CASE("primary key: route-chosen headers and cookies enter the key") {
    KeyRules rules;
    rules.headers = {"X-Tenant"};
    rules.cookies = {"region"};
    auto a = key("GET", "h", "/x", rules, make({{"X-Tenant", "acme"}, {"Cookie", "session=1; region=eu"}}));
    auto b = key("GET", "h", "/x", rules, make({{"x-tenant", "acme"}, {"Cookie", "region=eu; session=2"}}));
    auto c = key("GET", "h", "/x", rules, make({{"X-Tenant", "other"}, {"Cookie", "region=eu"}}));
    auto d = key("GET", "h", "/x", rules, make({{"X-Tenant", "acme"}, {"Cookie", "region=us"}}));
    CHECK(a == b);  // other cookies do not matter
    CHECK(a != c);
    CHECK(a != d);
}

TEST_CASE("Vary names: lower-case, sorted, deduplicated, and * stands alone") {
    CHECK(cache::vary_names(make({{"Vary", "Accept-Encoding, accept-language"}, {"Vary", "ACCEPT-ENCODING"}})) ==
          std::vector<std::string>{"accept-encoding", "accept-language"});
    CHECK(cache::vary_names(make({{"Vary", "Accept, *"}})) == std::vector<std::string>{"*"});
    CHECK(cache::vary_names(make({})).empty());
}

TEST_CASE("variant key: whitespace and list order do not split variants but values do") {
    std::vector<std::string> vary{"accept-language", "x-flags"};
    auto a = cache::variant_key(vary, make({{"Accept-Language", "en,  fr"}, {"X-Flags", "b, a"}}));
    auto b = cache::variant_key(vary, make({{"accept-language", "fr, en"}, {"X-Flags", "a"}, {"X-Flags", "b"}}));
    auto c = cache::variant_key(vary, make({{"Accept-Language", "de"}, {"X-Flags", "a, b"}}));
    auto absent = cache::variant_key(vary, make({}));
    CHECK(a == b);
    CHECK(a != c);
    CHECK(a != absent);
}

TEST_CASE("Accept-Language: ranges compared without case, weights written one way, refusals dropped") {
    struct Row {
        const char* header;
        const char* normalized;
    };
    auto row = GENERATE(values<Row>({
        {"en-US, fr;q=0.5", "en-us,fr;q=0.5"},
        {"FR;Q=0.50, EN-us", "en-us,fr;q=0.5"},
        {"en;q=1.000, fr;q=0.500", "en,fr;q=0.5"},
        {"en;q=1", "en"},
        {"de;q=0, en", "en"},
        {"de;q=0.000", ""},
        {"en, EN", "en"},
        {" , ", ""},
        {"*;q=0.1, en", "*;q=0.1,en"},
    }));
    INFO(row.header);
    CHECK(cache::normalized_accept_language(row.header) == row.normalized);
}

TEST_CASE("Vary on Accept-Language: one variant for lists that ask for the same thing") {
    std::vector<std::string> vary{"accept-language"};
    auto a = cache::variant_key(vary, make({{"Accept-Language", "en-US, fr;q=0.5"}}));
    auto b = cache::variant_key(vary, make({{"accept-language", "FR;q=0.50,en-us"}}));
    auto c = cache::variant_key(vary, make({{"Accept-Language", "en-US, fr;q=0.6"}}));
    CHECK(a == b);
    CHECK(a != c);  // another weight may get another answer
}

TEST_CASE("Accept-Encoding is reduced to the codings worth a variant") {
    struct Row {
        const char* header;
        const char* normalized;
    };
    auto row = GENERATE(values<Row>({
        {"gzip, deflate, br", "br,gzip"},
        {"br;q=1.0, gzip;q=0.8, *;q=0.1", "br,gzip,zstd"},
        {"gzip;q=0", ""},
        {"*, br;q=0", "gzip,zstd"},
        {"identity", ""},
        {"x-gzip", "gzip"},
        {"", ""},
        {"GZIP , Br", "br,gzip"},
    }));
    INFO(row.header);
    CHECK(cache::normalized_accept_encoding(row.header) == row.normalized);
}
