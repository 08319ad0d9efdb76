// The non-caching reverse proxy, through real sockets: the cachalot binary between a test
// client and a test origin.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

TEST_CASE("method, path, query, headers and body reach the origin unchanged") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.status = 201, .headers = {{"X-Origin", "yes"}}, .body = "echo:" + r.body};
    });
    Daemon cachalot(proxy_config(origin.port()));

    auto res = fetch(cachalot.port(), "/items/42?sort=desc&q=a%20b", "PUT",
                     {{"Content-Type", "application/json"}, {"X-Request-Id", "abc"}, {"Authorization", "Bearer t"}},
                     R"({"name":"whale"})");
    CHECK(res.result_int() == 201);
    CHECK(res.body() == R"(echo:{"name":"whale"})");
    CHECK(res["X-Origin"] == "yes");

    auto seen = origin.last_request();
    CHECK(seen.method == "PUT");
    CHECK(seen.target == "/items/42?sort=desc&q=a%20b");
    CHECK(seen.body == R"({"name":"whale"})");
    CHECK(seen.header("Content-Type") == "application/json");
    CHECK(seen.header("X-Request-Id") == "abc");
    CHECK(seen.header("Authorization") == "Bearer t");
    CHECK(seen.header("Host") == "localhost");
}

TEST_CASE("forwarding headers: Via both ways, X-Forwarded-For/-Proto/-Host to the origin") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/", "GET", {{"X-Forwarded-For", "203.0.113.9"}, {"Via", "1.1 edge"}});
    CHECK(res.result_int() == 200);
    CHECK(res["Via"] == "1.1 cachalot");

    auto seen = origin.last_request();
    CHECK(seen.header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1");
    CHECK(seen.header("X-Forwarded-Proto") == "http");
    CHECK(seen.header("X-Forwarded-Host") == "localhost");
    CHECK(seen.header("Via") == "1.1 edge, 1.1 cachalot");
}

TEST_CASE("hop-by-hop headers are stripped in both directions") {
    TestOrigin origin([](const OriginRequest&) {
        return Reply{.headers = {{"Connection", "X-Origin-Hop"}, {"X-Origin-Hop", "1"}, {"Keep-Alive", "timeout=5"},
                                 {"Upgrade", "h2c"}, {"X-End-To-End", "kept"}},
                     .body = "ok"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/", "GET",
                     {{"Connection", "keep-alive, X-Client-Hop"}, {"X-Client-Hop", "1"}, {"TE", "trailers"},
                      {"Proxy-Authorization", "Basic eDp5"}, {"Keep-Alive", "300"}, {"X-Client-E2E", "kept"}});
    CHECK(res.result_int() == 200);
    CHECK(res.count("X-Origin-Hop") == 0);
    CHECK(res.count("Keep-Alive") == 0);
    CHECK(res.count("Upgrade") == 0);
    CHECK(res["X-End-To-End"] == "kept");

    auto seen = origin.last_request();
    CHECK(seen.headers.count("X-Client-Hop") == 0);
    CHECK(seen.headers.count("TE") == 0);
    CHECK(seen.headers.count("Proxy-Authorization") == 0);
    CHECK(seen.headers.count("Keep-Alive") == 0);
    CHECK(seen.header("X-Client-E2E") == "kept");
}

TEST_CASE("a chunked request body is forwarded with its length") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = "got " + std::to_string(r.body.size())}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    auto res = client.read_response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "got 11");
    auto seen = origin.last_request();
    CHECK(seen.body == "hello world");
    CHECK(seen.header("Content-Length") == "11");
    CHECK(seen.headers.count("Transfer-Encoding") == 0);
}

TEST_CASE("a chunked origin response reaches the client whole") {
    TestOrigin origin([](const OriginRequest&) {
        return Reply{.raw = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "4\r\nwhal\r\n1\r\ne\r\n0\r\n\r\n")};
    });
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/");
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "whale");
}

TEST_CASE("HEAD keeps the origin's Content-Length and sends no body") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.body = std::string(1234, 'x')}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    auto res = client.request("HEAD", "/");
    CHECK(res.result_int() == 200);
    CHECK(res["Content-Length"] == "1234");
    CHECK(res.body().empty());
    // The connection is still in step: the next request gets its own response.
    auto next = client.request("GET", "/");
    CHECK(next.body().size() == 1234);
}

TEST_CASE("keep-alive: sequential requests reuse one origin connection") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    for (int i = 0; i < 5; ++i) CHECK(fetch(cachalot.port(), "/n" + std::to_string(i)).result_int() == 200);
    CHECK(origin.request_count() == 5);
    CHECK(origin.connections() == 1);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_upstream_connections_total{kind="new",upstream="origin"})", 1) == 1);
    CHECK(await_metric(cachalot.admin_port(), R"(cachalot_upstream_connections_total{kind="reused",upstream="origin"})", 4) == 4);
}

TEST_CASE("keep-alive: one client connection carries many requests") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = r.target}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    for (int i = 0; i < 10; ++i) CHECK(client.request("GET", "/k" + std::to_string(i)).body() == "/k" + std::to_string(i));
}

TEST_CASE("pipelined requests are answered in order") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = r.target}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                    "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /three HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(client.read_response().body() == "/one");
    CHECK(client.read_response().body() == "/two");
    CHECK(client.read_response().body() == "/three");
    CHECK(origin.last_request().target == "/three");
}

TEST_CASE("a response larger than the socket buffers arrives whole and in order, and the connection carries on") {
    // 24 MiB cannot leave in one send: the rest is written as the client reads.
    std::string big(24u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
    TestOrigin origin([&](const OriginRequest& r) { return Reply{.body = r.target == "/big" ? big : "small"}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    auto res = client.read_response();
    CHECK(res.result_int() == 200);
    CHECK(res.body().size() == big.size());
    CHECK(res.body() == big);
    CHECK(client.read_response().body() == "small");
}

TEST_CASE("a request body larger than the socket buffers reaches the origin whole and in order") {
    // 9 MiB (under client.max_body_bytes) cannot leave for the origin in one send.
    std::string big(9u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
    TestOrigin origin([&](const OriginRequest& r) { return Reply{.body = r.body == big ? "same" : "different"}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    auto res = client.request("PUT", "/upload", {}, big);
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "same");
    CHECK(client.request("GET", "/after").result_int() == 200);
}

TEST_CASE("Connection: close from the client closes after the response") {
    TestOrigin origin;
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    auto res = client.request("GET", "/", {{"Connection", "close"}});
    CHECK(res.result_int() == 200);
    CHECK(res["Connection"] == "close");
    CHECK(client.closed_by_peer());
}

TEST_CASE("HTTP/1.0 clients get their response and the connection closes") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.body = "old"}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("GET / HTTP/1.0\r\n\r\n");
    auto raw = client.read_until_close();
    CHECK(raw.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
    CHECK(raw.substr(raw.size() - 3) == "old");
}

TEST_CASE("a request no route matches gets 404 from the proxy itself") {
    TestOrigin origin;
    auto config = proxy_config(origin.port());
    config.replace(config.find("path_prefix: /}"), 15, "path_prefix: /api}");
    Daemon cachalot(config);
    auto res = fetch(cachalot.port(), "/web");
    CHECK(res.result_int() == 404);
    CHECK(origin.request_count() == 0);
    CHECK(fetch(cachalot.port(), "/api/x").result_int() == 200);
}

TEST_CASE("routes are matched on host and path prefix, first match wins") {
    TestOrigin api([](const OriginRequest&) { return Reply{.body = "api"}; });
    TestOrigin web([](const OriginRequest&) { return Reply{.body = "web"}; });
    Daemon cachalot("listen:\n"
                    "  proxy: {address: 127.0.0.1, port: {proxy_port}}\n"
                    "  admin: {address: 127.0.0.1, port: {admin_port}}\n"
                    "workers: 1\n"
                    "upstreams:\n"
                    "  - {name: api, host: 127.0.0.1, port: " + std::to_string(api.port()) + "}\n"
                    "  - {name: web, host: 127.0.0.1, port: " + std::to_string(web.port()) + "}\n"
                    "routes:\n"
                    "  - {name: api, upstream: api, match: {host: api.example.com, path_prefix: /}}\n"
                    "  - {name: v1, upstream: api, match: {path_prefix: /v1/}}\n"
                    "  - {name: web, upstream: web, match: {host: \"*.example.com\"}}\n");
    CHECK(fetch(cachalot.port(), "/", "GET", {{"Host", "API.example.com:80"}}).body() == "api");
    CHECK(fetch(cachalot.port(), "/v1/x", "GET", {{"Host", "www.example.com"}}).body() == "api");
    CHECK(fetch(cachalot.port(), "/v2/x", "GET", {{"Host", "www.example.com"}}).body() == "web");
    CHECK(fetch(cachalot.port(), "/v2/x", "GET", {{"Host", "example.net"}}).result_int() == 404);
}

TEST_CASE("a route's request_headers strip and set fields before the key is built and the request forwarded") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}, {"Vary", "X-Tenant"}}, .body = r.header("X-Tenant")};
    });
    auto config = proxy_config(origin.port());
    const std::string anchor = "    upstream: origin\n";
    config.replace(config.find(anchor), anchor.size(),
                   anchor + "    request_headers: {strip: [X-Debug], set: {X-Tenant: shared}}\n");
    Daemon cachalot(config);
    auto first = fetch(cachalot.port(), "/t", "GET",
                       {{"X-Debug", "1"}, {"X-Tenant", "a"}, {"X-HTTP-Method-Override", "PUT"}});
    CHECK(first.body() == "shared");
    auto got = origin.last_request();
    CHECK(got.header("X-Debug").empty());
    CHECK(got.header("X-HTTP-Method-Override") == "PUT");  // `strip` replaced the default list
    // The key saw the value the origin saw: another tenant's request is the same variant.
    auto second = fetch(cachalot.port(), "/t", "GET", {{"X-Tenant", "b"}});
    CHECK(second.body() == "shared");
    CHECK(second["Cache-Status"].starts_with("cachalot; hit"));
    CHECK(origin.request_count() == 1);
}

TEST_CASE("Expect: 100-continue gets an interim 100 before the body is read") {
    TestOrigin origin([](const OriginRequest& r) { return Reply{.body = r.body}; });
    Daemon cachalot(proxy_config(origin.port()));
    Client client(cachalot.port());
    client.send_raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    auto interim = client.read_response();
    CHECK(interim.result_int() == 100);
    client.send_raw("data");
    auto res = client.read_response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "data");
    CHECK(origin.last_request().headers.count("Expect") == 0);
}
