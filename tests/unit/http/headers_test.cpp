#include "cachalot/http/headers.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::http;

namespace {

Fields make(std::initializer_list<std::pair<const char*, const char*>> list) {
    Fields f;
    for (auto& [n, v] : list) f.insert(n, v);
    return f;
}

}  // namespace

TEST_CASE("hop-by-hop fields are removed, end-to-end fields kept") {
    auto f = make({{"Connection", "keep-alive, X-Session-Hop"},
                   {"Keep-Alive", "timeout=5"},
                   {"TE", "trailers"},
                   {"Trailer", "X-Checksum"},
                   {"Transfer-Encoding", "chunked"},
                   {"Upgrade", "websocket"},
                   {"Proxy-Connection", "keep-alive"},
                   {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                   {"Proxy-Authenticate", "Basic"},
                   {"X-Session-Hop", "secret"},
                   {"Cache-Control", "max-age=60"},
                   {"Authorization", "Bearer end-to-end"},
                   {"X-Custom", "kept"}});
    strip_hop_by_hop(f);
    for (auto name : {"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
                      "Proxy-Authorization", "Proxy-Authenticate", "X-Session-Hop"})
        CHECK(f.count(name) == 0);
    CHECK(f["Cache-Control"] == "max-age=60");
    CHECK(f["Authorization"] == "Bearer end-to-end");
    CHECK(f["X-Custom"] == "kept");
}

TEST_CASE("fields named in several Connection headers are all removed, case-insensitively") {
    auto f = make({{"Connection", "x-one"}, {"X-Keep", "1"}, {"connection", " X-TWO ,, "}, {"X-One", "a"},
                   {"x-two", "b"}});
    strip_hop_by_hop(f);
    CHECK(f.count("X-One") == 0);
    CHECK(f.count("X-Two") == 0);
    CHECK(f["X-Keep"] == "1");
}

TEST_CASE("X-Forwarded-For appends the client to what earlier proxies wrote") {
    auto f = make({{"X-Forwarded-For", "203.0.113.7"}, {"X-Other", "x"}, {"x-forwarded-for", "198.51.100.2 "}});
    CHECK(forwarding_fields(f, {"127.0.0.1", "http", "api.example.com"}, "cachalot").x_forwarded_for ==
          "203.0.113.7, 198.51.100.2, 127.0.0.1");
}

TEST_CASE("X-Forwarded-For is created when absent") {
    Fields f;
    CHECK(forwarding_fields(f, {"10.1.2.3", "http", "h"}, "cachalot").x_forwarded_for == "10.1.2.3");
}

TEST_CASE("X-Forwarded-Proto and -Host replace what the client claimed") {
    auto f = make({{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "evil.example"}});
    auto fwd = forwarding_fields(f, {"127.0.0.1", "http", "api.example.com:8080"}, "cachalot");
    CHECK(fwd.x_forwarded_proto == "http");
    CHECK(fwd.x_forwarded_host == "api.example.com:8080");
    CHECK(forwarding_fields(f, {"127.0.0.1", "http", ""}, "cachalot").x_forwarded_host.empty());
    CHECK(is_forwarding_field("x-forwarded-proto"));
    CHECK(is_forwarding_field("X-Forwarded-Host"));
}

TEST_CASE("Forwarded gets this hop's element appended after what earlier proxies wrote") {
    auto f = make({{"Forwarded", "for=192.0.2.60;proto=https"}, {"Forwarded", " for=unknown "}});
    CHECK(forwarding_fields(f, {"127.0.0.1", "http", "api.example.com:8080"}, "cachalot").forwarded ==
          R"(for=192.0.2.60;proto=https, for=unknown, for="127.0.0.1";host="api.example.com:8080";proto=http)");
    Fields g;
    CHECK(forwarding_fields(g, {"2001:db8::1", "http", ""}, "cachalot").forwarded == R"(for="[2001:db8::1]";proto=http)");
}

TEST_CASE("a forwarded request's Via gets this hop appended") {
    CHECK(forwarding_fields(Fields{}, {"127.0.0.1", "http", ""}, "cachalot").via == "1.1 cachalot");
    auto f = make({{"Via", "1.0 fred, 1.1 p.example.net"}});
    CHECK(forwarding_fields(f, {"127.0.0.1", "http", ""}, "cachalot").via == "1.0 fred, 1.1 p.example.net, 1.1 cachalot");
    CHECK(is_forwarding_field("via"));
    CHECK_FALSE(is_forwarding_field("X-Forwarded"));
}

TEST_CASE("Via gets this hop appended") {
    Fields f;
    add_via(f, "cachalot");
    CHECK(f["Via"] == "1.1 cachalot");
    auto g = make({{"Via", "1.0 fred, 1.1 p.example.net"}});
    add_via(g, "cachalot");
    CHECK(g["Via"] == "1.0 fred, 1.1 p.example.net, 1.1 cachalot");
}

TEST_CASE("request framing: unambiguous requests pass") {
    CHECK_FALSE(ambiguous_framing(make({{"Content-Length", "10"}})));
    CHECK_FALSE(ambiguous_framing(make({{"Transfer-Encoding", "chunked"}})));
    CHECK_FALSE(ambiguous_framing(make({{"Transfer-Encoding", "Chunked"}})));
    CHECK_FALSE(ambiguous_framing(make({{"Content-Length", "5"}, {"Content-Length", "5"}})));
    CHECK_FALSE(ambiguous_framing(make({{"Content-Length", "5, 5"}})));
    CHECK_FALSE(ambiguous_framing(Fields{}));
}

TEST_CASE("request framing: smuggling shapes are refused") {
    CHECK(ambiguous_framing(make({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}})));
    CHECK(ambiguous_framing(make({{"Content-Length", "5"}, {"Content-Length", "6"}})));
    CHECK(ambiguous_framing(make({{"Content-Length", "5, 6"}})));
    CHECK(ambiguous_framing(make({{"Content-Length", "-1"}})));
    CHECK(ambiguous_framing(make({{"Content-Length", "0x10"}})));
    CHECK(ambiguous_framing(make({{"Content-Length", ""}})));
    CHECK(ambiguous_framing(make({{"Transfer-Encoding", "gzip"}})));
    CHECK(ambiguous_framing(make({{"Transfer-Encoding", "chunked, gzip"}})));
    CHECK(ambiguous_framing(make({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})));
    CHECK(ambiguous_framing(make({{"Transfer-Encoding", "xchunked"}})));
    CHECK(ambiguous_framing(make({{"Transfer-Encoding", "gzip, chunked"}})));  // would reach the client still gzipped
}

TEST_CASE("idempotent methods are the ones RFC 9110 names") {
    for (auto m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) CHECK(is_idempotent(m));
    for (auto m : {"POST", "PATCH", "CONNECT", "get"}) CHECK_FALSE(is_idempotent(m));
}
