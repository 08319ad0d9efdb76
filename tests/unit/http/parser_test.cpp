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
