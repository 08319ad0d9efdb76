#include "cachalot/cache/entry.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace cachalot::cache;

namespace {

Entry sample() {
    Entry e;
    e.status = 203;
    e.headers = {{"Content-Type", "application/json"}, {"ETag", "\"v1\""}, {"X-Empty", ""}};
    e.body = std::string("{\"binary\":\"\0\xff\"}", 15);
    e.request_time = 1'790'000'000;
    e.response_time = 1'790'000'001;
    e.vary = {"accept-encoding", "accept-language"};
    e.variant = "gzip\nen";
    e.vary_epoch = "1f2e";
    e.fetched_ms = 1'790'000'000'250;
    e.purge_slots = {7, 65535, 1};
    return e;
}

void check_equal(const Entry& a, const Entry& b) {
    CHECK(a.status == b.status);
    CHECK(a.headers == b.headers);
    CHECK(a.body == b.body);
    CHECK(a.request_time == b.request_time);
    CHECK(a.response_time == b.response_time);
    CHECK(a.vary == b.vary);
    CHECK(a.variant == b.variant);
    CHECK(a.vary_epoch == b.vary_epoch);
    CHECK(a.fetched_ms == b.fetched_ms);
    CHECK(a.purge_slots == b.purge_slots);
}

}  // namespace

TEST_CASE("entry encoding round-trips every field") {
    auto e = sample();
    auto decoded = decode_entry(encode_entry(e));
    REQUIRE(decoded);
    check_equal(*decoded, e);
    auto empty = decode_entry(encode_entry(Entry{}));
    REQUIRE(empty);
    check_equal(*empty, Entry{});
}

TEST_CASE("entry decoding refuses truncated bytes, at every length") {
    auto bytes = encode_entry(sample());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO(n);
        CHECK_FALSE(decode_entry(std::string_view(bytes).substr(0, n)));
    }
}

TEST_CASE("entry decoding refuses any flipped byte, trailing bytes and another version") {
    auto bytes = encode_entry(sample());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        auto bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x5a);
        INFO(i);
        CHECK_FALSE(decode_entry(bad));
    }
    CHECK_FALSE(decode_entry(bytes + "x"));
    auto other_version = bytes;
    other_version[4] = static_cast<char>(kEntryVersion + 1);
    CHECK_FALSE(decode_entry(other_version));
}

TEST_CASE("entry decoding survives random garbage") {
    std::mt19937_64 rng(3);
    for (int n = 0; n < 20000; ++n) {
        std::string junk(rng() % 200, '\0');
        for (auto& c : junk) c = static_cast<char>(rng());
        if (n % 2 == 0 && junk.size() >= 4) junk.replace(0, 4, "CACE");
        CHECK_FALSE(decode_entry(junk));
    }
}
