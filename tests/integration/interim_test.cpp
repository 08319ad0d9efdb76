// Interim responses over the wire: the origin's 103 Early Hints and 102 Processing reach the
// client as they come, before the final response (the origin is held between them), and are
// never stored, nor their fields with the final response. 100 Continue is the proxy's own; an
// unasked-for 101 is refused.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

namespace {
const std::string kFinal = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nfinal";
}  // namespace

TEST_CASE("103 and 102 from the origin reach the client before the final response, and are never stored") {
    Gate gate;
    TestOrigin origin([&](const OriginRequest&) {
        Reply reply;
        reply.parts = {"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"
                       "HTTP/1.1 102 Processing\r\n\r\n",
                       kFinal};
        reply.before_part = [&](std::size_t) { gate.wait(); };
        return reply;
    });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("GET /hints HTTP/1.1\r\nHost: x\r\n\r\n");
    // The origin is held before its final response: what came so far came on its own.
    auto early = client.read_response();
    CHECK(early.result_int() == 103);
    CHECK(early["Link"] == "</app.css>; rel=preload");
    CHECK(early.count("X-Hop") == 0);  // named by Connection: hop-by-hop
    auto processing = client.read_response();
    CHECK(processing.result_int() == 102);
    gate.open();
    auto final_response = client.read_response();
    CHECK(final_response.result_int() == 200);
    CHECK(final_response.body() == "final");
    CHECK(final_response.count("Link") == 0);  // the interim fields are not the final response's
    CHECK(final_response["Cache-Status"] == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");

    // The stored response has neither the interim responses nor their fields.
    client.send_raw("GET /hints HTTP/1.1\r\nHost: x\r\n\r\n");
    auto hit = client.read_response();
    CHECK(hit.result_int() == 200);
    CHECK(hit.count("Link") == 0);
    CHECK_THAT(std::string(hit["Cache-Status"]), Catch::StartsWith("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("interim responses are not sent to HTTP/1.0 clients, nor is the origin's 100 Continue") {
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n" + kFinal};
    });
    Daemon cachalot(proxy_config(origin.port()));
    SECTION("HTTP/1.0") {
        Client client(cachalot.port());
        client.send_raw("GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
        const auto all = client.read_until_close();
        CHECK(all.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
        CHECK(all.find("103") == std::string::npos);
    }
    SECTION("HTTP/1.1") {
        Client client(cachalot.port());
        client.send_raw("GET /new HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(client.read_response().result_int() == 103);  // not the 100 before it
        CHECK(client.read_response().result_int() == 200);
    }
}

TEST_CASE("a 101 the proxy did not ask for is refused with 502") {
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.raw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/upgrade").result_int() == 502);
}
