#include "cachalot/core/cidr.hpp"

#include <catch2/catch.hpp>

using cachalot::core::parse_network;

TEST_CASE("cidr: networks contain the addresses under their prefix, IPv4-mapped clients included") {
    auto ten = parse_network("10.0.0.0/8");
    REQUIRE(ten);
    CHECK(ten->contains("10.255.1.2"));
    CHECK(ten->contains("::ffff:10.1.2.3"));
    CHECK_FALSE(ten->contains("11.0.0.1"));
    CHECK_FALSE(ten->contains("2001:db8::1"));
    auto odd = parse_network("192.168.1.130/25");
    REQUIRE(odd);
    CHECK(odd->contains("192.168.1.200"));
    CHECK_FALSE(odd->contains("192.168.1.100"));
    auto host = parse_network("127.0.0.1");
    REQUIRE(host);
    CHECK(host->contains("127.0.0.1"));
    CHECK_FALSE(host->contains("127.0.0.2"));
    auto v6 = parse_network("2001:db8::/32");
    REQUIRE(v6);
    CHECK(v6->contains("2001:db8:ffff::1"));
    CHECK_FALSE(v6->contains("2001:db9::1"));
    CHECK(parse_network("0.0.0.0/0")->contains("203.0.113.9"));
    CHECK_FALSE(parse_network("0.0.0.0/0")->contains("not an address"));
}

TEST_CASE("cidr: what is not a network is refused") {
    for (const char* bad : {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "2001:db8::/129", "host/8",
                            "10.0.0.0/8/8", " 10.0.0.0/8"}) {
        INFO(bad);
        CHECK_FALSE(parse_network(bad));
    }
}
