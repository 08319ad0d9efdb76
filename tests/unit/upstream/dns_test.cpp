// DNS messages for the upstream resolver: the query's bytes, and responses read without
// trusting them (another id, another question, no response, truncation, pointer loops).

#include "upstream/dns.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::upstream;

namespace {

// A response to query(id, "api.test", A) with `answers` (already encoded records), built by hand.
std::string response(std::uint16_t id, const std::string& answers, int count, unsigned rcode = 0) {
    std::string out;
    out += static_cast<char>(id >> 8);
    out += static_cast<char>(id & 0xff);
    out += static_cast<char>(0x81);
    out += static_cast<char>(0x80 | rcode);
    out += std::string("\x00\x01", 2);
    out += static_cast<char>(0);
    out += static_cast<char>(count);
    out += std::string(4, '\0');
    out += std::string("\x03" "api" "\x04" "test" "\x00", 10);
    out += std::string("\x00\x01\x00\x01", 4);
    return out + answers;
}

std::string a_record(const std::string& name, const char (&address)[5], std::uint32_t ttl = 30) {
    std::string out = name;
    out += std::string("\x00\x01\x00\x01", 4);
    out += static_cast<char>(ttl >> 24);
    out += static_cast<char>(ttl >> 16 & 0xff);
    out += static_cast<char>(ttl >> 8 & 0xff);
    out += static_cast<char>(ttl & 0xff);
    out += std::string("\x00\x04", 2);
    out += std::string(address, 4);
    return out;
}

const std::string kPointerToQuestion("\xc0\x0c", 2);

}  // namespace

TEST_CASE("dns: a query asks for one name and type, recursion desired") {
    const auto q = dns::query(0x1234, "api.test.", dns::Type::AAAA);
    CHECK(q == std::string("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                           "\x03" "api" "\x04" "test" "\x00"
                           "\x00\x1c\x00\x01",
                           26));
    CHECK(dns::query(1, "", dns::Type::A).empty());
    CHECK(dns::query(1, "a..b", dns::Type::A).empty());
    CHECK(dns::query(1, std::string(64, 'x') + ".test", dns::Type::A).empty());
}

TEST_CASE("dns: the addresses of a response, after CNAMEs, with the smallest TTL") {
    std::string cname = kPointerToQuestion + std::string("\x00\x05\x00\x01\x00\x00\x00\x10\x00\x02\xc0\x0c", 12);
    const auto bytes = response(7, cname + a_record(kPointerToQuestion, "\x0a\x00\x00\x01", 30) +
                                        a_record(kPointerToQuestion, "\x0a\x00\x00\x02", 20),
                                3);
    const auto answer = dns::parse(bytes, 7, "API.test", dns::Type::A);
    REQUIRE(answer);
    CHECK(answer->rcode == 0);
    CHECK(answer->addresses == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
    CHECK(answer->ttl == 20);
}

TEST_CASE("dns: no such name is an answer without addresses") {
    const auto answer = dns::parse(response(7, "", 0, 3), 7, "api.test", dns::Type::A);
    REQUIRE(answer);
    CHECK(answer->rcode == 3);
    CHECK(answer->addresses.empty());
}

TEST_CASE("dns: what is not the response to our query is none") {
    const auto good = response(7, a_record(kPointerToQuestion, "\x0a\x00\x00\x01"), 1);
    REQUIRE(dns::parse(good, 7, "api.test", dns::Type::A));
    CHECK_FALSE(dns::parse(good, 8, "api.test", dns::Type::A));     // another id
    CHECK_FALSE(dns::parse(good, 7, "other.test", dns::Type::A));   // another question
    CHECK_FALSE(dns::parse(good, 7, "api.test", dns::Type::AAAA));  // another type
    auto query = good;
    query[2] = 0x01;  // not a response
    CHECK_FALSE(dns::parse(query, 7, "api.test", dns::Type::A));
    for (std::size_t n = 0; n < good.size(); ++n)  // cut anywhere
        CHECK_FALSE(dns::parse(good.substr(0, n), 7, "api.test", dns::Type::A));
    // An A record of the wrong length.
    auto wrong = response(7, kPointerToQuestion + std::string("\x00\x01\x00\x01\x00\x00\x00\x01\x00\x05" "abcde", 15), 1);
    CHECK_FALSE(dns::parse(wrong, 7, "api.test", dns::Type::A));
}

TEST_CASE("dns: compression pointers that loop or point forwards are refused") {
    // The answer's name points at itself, then forwards.
    auto self = response(7, "", 1);
    const auto at = self.size();
    self += static_cast<char>(0xc0);
    self += static_cast<char>(at);
    self += std::string("\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x0a\x00\x00\x01", 14);
    CHECK_FALSE(dns::parse(self, 7, "api.test", dns::Type::A));
    auto forward = response(7, "", 1);
    forward += static_cast<char>(0xc0);
    forward += static_cast<char>(forward.size() + 4);
    forward += std::string("\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x0a\x00\x00\x01", 14);
    CHECK_FALSE(dns::parse(forward, 7, "api.test", dns::Type::A));
}
