// Conditions and ranges the cache answers itself, over the wire: a conditional or range miss is
// fetched whole and stored, then answered here (304, 206, 416, multipart/byteranges); a range
// of a body too large to store is asked of the origin as it is.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

namespace {

// 64 KiB of a repeating alphabet: every offset's byte is known.
std::string body_of(std::size_t size) {
    std::string b(size, '\0');
    for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<char>('a' + i % 26);
    return b;
}

// One representation per path, stored for a minute; the origin answers a Range itself (206)
// only for /huge (and its ETag is strong: parts of it combine), whose 2 MiB are more than the test L1 takes (256 KiB).
TestOrigin::Handler representation() {
    return [](const OriginRequest& r) {
        const bool huge = r.target == "/huge";
        const auto body = body_of(huge ? 2048 * 1024 : 64 * 1024);
        Reply reply{.headers = {{"Cache-Control", "max-age=60"}, {"ETag", "\"r1\""}, {"Content-Type", "text/plain"}},
                    .body = body};
        const auto range = r.header("Range");  // (the tests ask for bytes=FIRST-LAST only)
        if (huge && !range.empty()) {
            const auto dash = range.find('-');
            const auto first = std::stoul(range.substr(6, dash - 6)), last = std::stoul(range.substr(dash + 1));
            reply.status = 206;
            reply.headers.push_back({"Content-Range", "bytes " + range.substr(6) + "/" + std::to_string(body.size())});
            reply.body = body.substr(first, last - first + 1);
        }
        return reply;
    };
}

}  // namespace

TEST_CASE("a conditional GET miss is fetched whole and stored, and answered 304 here") {
    TestOrigin origin(representation());
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/c", "GET", {{"If-None-Match", "\"r1\""}});
    CHECK(res.result_int() == 304);
    CHECK(res["ETag"] == "\"r1\"");
    CHECK(res["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    CHECK(origin.last_request().header("If-None-Match").empty());  // asked unconditionally
    auto hit = fetch(cachalot.port(), "/c");
    CHECK(hit.body() == body_of(64 * 1024));
    CHECK_THAT(std::string(hit["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("range requests: a miss is fetched whole and stored, hits are 206, 416 or multipart, on one connection") {
    TestOrigin origin(representation());
    Daemon cachalot(proxy_config(origin.port()));
    const auto whole = body_of(64 * 1024);
    Client client(cachalot.port());

    auto miss = client.request("GET", "/r", {{"Range", "bytes=100-199"}});
    CHECK(miss.result_int() == 206);
    CHECK(miss["Content-Range"] == "bytes 100-199/65536");
    CHECK(miss.body() == whole.substr(100, 100));
    CHECK(miss["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    CHECK(origin.last_request().header("Range").empty());

    auto suffix = client.request("GET", "/r", {{"Range", "bytes=-10"}});
    CHECK(suffix.result_int() == 206);
    CHECK(suffix["Content-Range"] == "bytes 65526-65535/65536");
    CHECK(suffix.body() == whole.substr(65526));
    CHECK_THAT(std::string(suffix["Cache-Status"]), Catch::StartsWith("cachalot; hit"));

    auto beyond = client.request("GET", "/r", {{"Range", "bytes=70000-"}});
    CHECK(beyond.result_int() == 416);
    CHECK(beyond["Content-Range"] == "bytes */65536");
    CHECK(beyond.body().empty());

    auto other_version = client.request("GET", "/r", {{"Range", "bytes=0-9"}, {"If-Range", "\"r0\""}});
    CHECK(other_version.result_int() == 200);
    CHECK(other_version.body() == whole);

    auto two = client.request("GET", "/r", {{"Range", "bytes=0-1,26-27"}});
    CHECK(two.result_int() == 206);
    CHECK_THAT(std::string(two["Content-Type"]), Catch::StartsWith("multipart/byteranges; boundary="));
    CHECK_THAT(two.body(), Catch::Contains("Content-Range: bytes 0-1/65536\r\n\r\nab\r\n--"));
    CHECK_THAT(two.body(), Catch::Contains("Content-Range: bytes 26-27/65536\r\n\r\nab\r\n--"));

    CHECK(client.request("GET", "/r").body() == whole);  // the connection stayed in step throughout
    CHECK(origin.request_count() == 1);
}

TEST_CASE("ranges of a body too large to store are asked of the origin as they are; the parts are stored and "
          "combine") {
    TestOrigin origin(representation());
    Daemon cachalot(proxy_config(origin.port()));
    const auto huge = body_of(2048 * 1024);
    Client client(cachalot.port());
    auto res = client.request("GET", "/huge", {{"Range", "bytes=1000-1009"}});
    CHECK(res.result_int() == 206);
    CHECK(res["Content-Range"] == "bytes 1000-1009/2097152");
    CHECK(res.body() == huge.substr(1000, 10));
    CHECK(res["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=206; stored; ttl=60");
    auto seen = origin.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].header("Range").empty());  // the whole first: its size was not known
    CHECK(seen[1].header("Range") == "bytes=1000-1009");

    auto inside = client.request("GET", "/huge", {{"Range", "bytes=1002-1003"}});
    CHECK(inside.body() == huge.substr(1002, 2));
    CHECK_THAT(std::string(inside["Cache-Status"]), Catch::StartsWith("cachalot; hit"));

    auto next = client.request("GET", "/huge", {{"Range", "bytes=1010-1019"}});
    CHECK(next.body() == huge.substr(1010, 10));
    CHECK(next["Cache-Status"] == "cachalot; fwd=partial; fwd-status=206; stored; ttl=60");
    seen = origin.requests();
    REQUIRE(seen.size() == 3);
    CHECK(seen[2].header("Range") == "bytes=1010-1019");  // straight to the range: the whole is known too large

    auto both = client.request("GET", "/huge", {{"Range", "bytes=1000-1019"}});
    CHECK(both["Content-Range"] == "bytes 1000-1019/2097152");
    CHECK(both.body() == huge.substr(1000, 20));
    CHECK_THAT(std::string(both["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 3);
}
