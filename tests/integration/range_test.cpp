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
// only for /huge, whose 2 MiB are more than the test L1 takes (256 KiB).
TestOrigin::Handler representation() {
    return [](const OriginRequest& r) {
        const bool huge = r.target == "/huge";
        const auto body = body_of(huge ? 2048 * 1024 : 64 * 1024);
        Reply reply{.headers = {{"Cache-Control", "max-age=60"}, {"ETag", "\"r1\""}, {"Content-Type", "text/plain"}},
                    .body = body};
        if (huge && r.header("Range") == "bytes=1000-1009") {
            reply.status = 206;
            reply.headers.push_back({"Content-Range", "bytes 1000-1009/" + std::to_string(body.size())});
            reply.body = body.substr(1000, 10);
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

TEST_CASE("a range of a body too large to store is asked of the origin as it is, and not stored") {
    TestOrigin origin(representation());
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/huge", "GET", {{"Range", "bytes=1000-1009"}});
    CHECK(res.result_int() == 206);
    CHECK(res["Content-Range"] == "bytes 1000-1009/2097152");
    CHECK(res.body() == body_of(2048 * 1024).substr(1000, 10));
    CHECK(res["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=206; detail=too-large");
    const auto seen = origin.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].header("Range").empty());  // the whole first: its size was not known
    CHECK(seen[1].header("Range") == "bytes=1000-1009");
}
