#include "cachalot/http/target.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using http::parse_authority;
using http::parse_request_target;
using Form = http::RequestTarget::Form;

TEST_CASE("a valid Host is normalized: lower case, no trailing dot, no default port") {
    struct Row {
        const char* in;
        const char* host;
        const char* port;
    };
    auto row = GENERATE(values<Row>({
        {"API.Example.com", "api.example.com", ""},
        {"api.example.com.", "api.example.com", ""},
        {"api.example.com:80", "api.example.com", ""},
        {"api.example.com:", "api.example.com", ""},
        {"api.example.com:8080", "api.example.com", "8080"},
        {"api.example.com:08080", "api.example.com", "8080"},
        {"under_score-1.example", "under_score-1.example", ""},
        {"192.0.2.1:81", "192.0.2.1", "81"},
        {"[::1]", "[::1]", ""},
        {"[2001:DB8::1]:8443", "[2001:db8::1]", "8443"},
        {"localhost", "localhost", ""},
    }));
    INFO(row.in);
    auto a = parse_authority(row.in);
    REQUIRE(a);
    CHECK(a->host == row.host);
    CHECK(a->port == row.port);
}

TEST_CASE("an invalid Host is refused: it could name another resource in a cache key") {
    auto bad = GENERATE(as<std::string>{}, "", "victim.example/static123", "a b", "victim.example\t", "user@victim.example",
                        "victim.example:http", "victim.example:65536", "victim.example:0", "victim.example:1:2",
                        "vict%69m.example", "[::1", "[::1]x", "[v1.x]", "[]", "a,b", "a;b", "a\\b", "a?b",
                        "a#b", ".", ":80", "a..b", ".a", "a..", "vicit...........", "caf\xc3\xa9.example", std::string("a\0b", 3), "victim.example:123456");
    INFO(bad);
    CHECK_FALSE(parse_authority(bad));
}

TEST_CASE("the default port depends on the scheme") {
    CHECK(parse_authority("h:443", "https")->port.empty());
    CHECK(parse_authority("h:80", "https")->port == "80");
    CHECK(parse_authority("h:443", "http")->port == "443");
    CHECK(parse_authority("H:8080")->to_string() == "h:8080");
}

TEST_CASE("request targets: origin-form, absolute-form and asterisk-form") {
    auto o = parse_request_target("/a/b?c=d");
    REQUIRE(o);
    CHECK(o->form == Form::Origin);
    CHECK_FALSE(o->authority);
    CHECK(o->origin_form == "/a/b?c=d");

    auto a = parse_request_target("HTTP://Victim.Example:80/m?A=1");
    REQUIRE(a);
    CHECK(a->form == Form::Absolute);
    CHECK(a->authority->to_string() == "victim.example");
    CHECK(a->origin_form == "/m?A=1");
    CHECK(parse_request_target("http://h")->origin_form == "/");
    CHECK(parse_request_target("http://h?q=1")->origin_form == "/?q=1");
    CHECK(parse_request_target("https://h:443/x")->authority->to_string() == "h");

    auto star = parse_request_target("*");
    REQUIRE(star);
    CHECK(star->form == Form::Asterisk);
}

TEST_CASE("request targets that are refused") {
    auto bad = GENERATE(as<std::string>{}, "", "foo", "h:80", "ftp://h/x", "http://", "http:///x", "http://a b/",
                        "http://user@h/x", "http://h/x#frag", "http://h/../x\x01", "/caf\xc3\xa9", "/a b", "/a\x7f",
                        "http://victim.example/static\xff");
    INFO(bad);
    CHECK_FALSE(parse_request_target(bad));
}

TEST_CASE("the path of an origin-form target leaves out the query") {
    CHECK(http::path_of("/a/b?c=d") == "/a/b");
    CHECK(http::path_of("/a") == "/a");
    CHECK(http::path_of("*") == "*");
}
