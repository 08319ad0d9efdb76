#include "core/net.hpp"
#include "http/parser.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;

TEST_CASE("a chunked body's trailer fields never join the header section") {
    const std::string raw =
        "POST /t HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nhi\r\n0\r\nHost: evil.example\r\nAuthorization: Bearer stolen\r\n\r\n";
    http::RequestParser parser;
    beast::error_code ec;
    parser.eager(true);
    parser.put(net::buffer(raw), ec);
    REQUIRE_FALSE(ec);
    REQUIRE(parser.is_done());
    const auto& req = parser.get();
    CHECK(req.body() == "hi");
    CHECK(req.count(bhttp::field::host) == 1);
    CHECK(req[bhttp::field::host] == "h.example");
    CHECK(req.count(bhttp::field::authorization) == 0);
}

TEST_CASE("a response's trailer fields are dropped too, its header fields are kept") {
    const std::string raw =
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nok\r\n0\r\nSet-Cookie: s=evil\r\nCache-Control: no-store\r\n\r\n";
    http::ResponseParser parser;
    beast::error_code ec;
    parser.eager(true);
    parser.put(net::buffer(raw), ec);
    REQUIRE_FALSE(ec);
    const auto& res = parser.get();
    CHECK(res[bhttp::field::cache_control] == "max-age=60");
    CHECK(res.count(bhttp::field::cache_control) == 1);
    CHECK(res.count(bhttp::field::set_cookie) == 0);
    CHECK(res.body() == "ok");
}
