// The request an origin gets (server::origin_request), read back with Beast's parser as the
// origin would read it.

#include "server/messages.hpp"

#include <boost/beast/http/parser.hpp>
#include <catch2/catch.hpp>

using namespace cachalot;
using namespace cachalot::server;

namespace {

Request read_back(const upstream::OriginRequest& sent) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.eager(true);
    beast::error_code ec;
    const std::string wire = sent.head + sent.body;
    const auto used = parser.put(net::buffer(wire), ec);
    REQUIRE((!ec || ec == bhttp::error::need_more));
    REQUIRE(parser.is_header_done());
    if (parser.is_done()) CHECK(used == wire.size());  // nothing after the message
    return parser.release();
}

Request client_request(bhttp::verb method, std::string_view target, std::initializer_list<std::pair<std::string, std::string>> fields) {
    Request req{method, target, 11};
    for (const auto& [n, v] : fields) req.insert(n, v);
    return req;
}

config::Upstream upstream_at(std::string host, unsigned short port) {
    config::Upstream up;
    up.name = "origin";
    up.servers.push_back({std::move(host), port});
    return up;
}

const ClientInfo kClient{"10.0.0.7", {"api.example", "8080"}};

}  // namespace

TEST_CASE("the origin request keeps the client's fields and replaces the forwarding ones") {
    auto req = client_request(bhttp::verb::get, "/items?x=1",
                              {{"Host", "api.example:8080"}, {"Accept", "application/json"},
                               {"X-Forwarded-For", "203.0.113.7"}, {"x-forwarded-host", "evil.example"},
                               {"Via", "1.0 fred"}, {"Expect", "100-continue"}, {"X-Custom", "a"}, {"X-Custom", "b"}});
    const auto sent = origin_request(req, "", kClient, upstream_at("127.0.0.1", 9000));
    CHECK(sent.method == bhttp::verb::get);
    CHECK(sent.method_string() == "GET");
    CHECK(sent.target() == "/items?x=1");
    CHECK(sent.head.starts_with("GET /items?x=1 HTTP/1.1\r\n"));
    const auto got = read_back(sent);
    CHECK(got[bhttp::field::host] == "api.example:8080");
    CHECK(got[bhttp::field::accept] == "application/json");
    CHECK(got.count("X-Custom") == 2);
    CHECK(got.count(bhttp::field::expect) == 0);  // the body is here already
    CHECK(got.count("X-Forwarded-For") == 1);
    CHECK(got["X-Forwarded-For"] == "203.0.113.7, 10.0.0.7");
    CHECK(got.count("X-Forwarded-Host") == 1);
    CHECK(got["X-Forwarded-Host"] == "api.example:8080");
    CHECK(got["X-Forwarded-Proto"] == "http");
    CHECK(got[bhttp::field::forwarded] == R"(for="10.0.0.7";host="api.example:8080";proto=http)");
    CHECK(got.count(bhttp::field::via) == 1);
    CHECK(got[bhttp::field::via] == "1.0 fred, 1.1 cachalot");
    CHECK(got.count(bhttp::field::content_length) == 0);  // a GET without a body
    CHECK(got.count(bhttp::field::connection) == 0);      // HTTP/1.1: keep-alive
}

TEST_CASE("the origin request is framed by the body it carries") {
    SECTION("a complete body: its length, whatever the client said") {
        auto req = client_request(bhttp::verb::post, "/orders", {{"Host", "api.example:8080"}, {"Content-Length", "99"}});
        const auto got = read_back(origin_request(req, "{\"a\":1}", kClient, upstream_at("127.0.0.1", 9000)));
        CHECK(got.count(bhttp::field::content_length) == 1);
        CHECK(got[bhttp::field::content_length] == "7");
        CHECK(got.body() == "{\"a\":1}");
    }
    SECTION("an empty POST says so, an empty GET says nothing") {
        auto post = client_request(bhttp::verb::post, "/orders", {{"Host", "h"}});
        CHECK(read_back(origin_request(post, "", kClient, upstream_at("o", 1)))[bhttp::field::content_length] == "0");
        auto get = client_request(bhttp::verb::get, "/", {{"Host", "h"}, {"Content-Length", "0"}});
        CHECK(read_back(origin_request(get, "", kClient, upstream_at("o", 1))).count(bhttp::field::content_length) == 0);
    }
    SECTION("a streamed upload: chunked without a length, else its length") {
        struct Upload final : upstream::BodyReader {
            std::optional<std::uint64_t> n;
            net::awaitable<beast::error_code> read(std::string&) override { co_return beast::error_code{}; }
            std::optional<std::uint64_t> length() const override { return n; }
        } upload;
        auto req = client_request(bhttp::verb::put, "/blob", {{"Host", "h"}});
        auto sent = origin_request(req, "", kClient, upstream_at("o", 1), {}, &upload);
        CHECK(sent.chunked);
        CHECK(read_back(sent)[bhttp::field::transfer_encoding] == "chunked");
        upload.n = 1234;
        sent = origin_request(req, "", kClient, upstream_at("o", 1), {}, &upload);
        CHECK_FALSE(sent.chunked);
        CHECK(read_back(sent)[bhttp::field::content_length] == "1234");
    }
}

TEST_CASE("a revalidation asks with the stored validators in place of the client's") {
    auto req = client_request(bhttp::verb::get, "/", {{"Host", "h"}, {"If-None-Match", "\"client\""}});
    auto got = read_back(origin_request(req, "", kClient, upstream_at("o", 1), {"\"v1\"", "Tue, 01 Jan 2030 00:00:00 GMT"}));
    CHECK(got.count(bhttp::field::if_none_match) == 1);
    CHECK(got[bhttp::field::if_none_match] == "\"v1\"");
    CHECK(got.count(bhttp::field::if_modified_since) == 0);  // the ETag is the stronger validator
    got = read_back(origin_request(req, "", kClient, upstream_at("o", 1), {"", "Tue, 01 Jan 2030 00:00:00 GMT"}));
    CHECK(got[bhttp::field::if_modified_since] == "Tue, 01 Jan 2030 00:00:00 GMT");
    CHECK(got[bhttp::field::if_none_match] == "\"client\"");
}

TEST_CASE("a validator that would break the head is left out") {
    auto req = client_request(bhttp::verb::get, "/", {{"Host", "h"}});
    const auto sent = origin_request(req, "", kClient, upstream_at("o", 1), {"\"v1\"\r\nX-Injected: 1", ""});
    CHECK(sent.head.find("X-Injected") == std::string::npos);
    CHECK(read_back(sent).count(bhttp::field::if_none_match) == 0);
}

TEST_CASE("an HTTP/1.0 request without Host goes with the upstream's host") {
    Request req{bhttp::verb::get, "/", 10};
    const auto got = read_back(origin_request(req, "", ClientInfo{"10.0.0.7", {}}, upstream_at("origin.internal", 9000)));
    CHECK(got.version() == 11);
    CHECK(got[bhttp::field::host] == "origin.internal:9000");
    CHECK(got.count("X-Forwarded-Host") == 0);
}

TEST_CASE("a made-up method is forwarded as it came") {
    Request req;
    req.method_string("BREW");
    req.target("/pot");
    req.set(bhttp::field::host, "h");
    const auto sent = origin_request(req, "", kClient, upstream_at("o", 1));
    CHECK(sent.method_string() == "BREW");
    CHECK(read_back(sent).method_string() == "BREW");
}
