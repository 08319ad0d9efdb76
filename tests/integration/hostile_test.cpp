// Hostile input, through the real binary: what a client gets for each malformed, ambiguous or
// poisoning request, and what the origin received because of it (an echo origin records every
// request). The table below is the regression corpus: a new case is one row.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;

namespace {

const std::string kLimits =
    "client:\n"
    "  max_header_bytes: 4KiB\n"
    "  max_body_bytes: 64\n"
    "  header_timeout: 500ms\n"
    "  body_timeout: 500ms\n"
    "  lingering_timeout: 200ms\n";

struct Case {
    const char* name;
    std::string raw;  // the bytes the client sends on a new connection
    unsigned status;  // the answer it gets
    // What the origin received: nothing, unless `forwarded`; then one request with this target
    // and Host, and none of the `absent` fields.
    bool forwarded = false;
    std::string target = {};
    std::string host = {};
    std::vector<std::string> absent = {};
    Headers present = {};  // fields the origin received with exactly these values
};

std::string get(const std::string& target, const std::string& fields) {
    return "GET " + target + " HTTP/1.1\r\n" + fields + "\r\n";
}

const std::vector<Case> kCases{
    // ---- Host and target: a key or an origin request for another host ----------------------
    {"absolute-form with another Host: the target's host wins, sent in origin-form",
     get("http://victim.example/m?A=1", "Host: evil.example\r\n"), 200, true, "/m?A=1", "victim.example"},
    {"absolute-form, upper-case scheme and host, default port",
     get("HTTP://Victim.Example:80/m", "Host: victim.example\r\n"), 200, true, "/m", "victim.example"},
    {"Host with a path", get("/1k", "Host: victim.example/static123\r\n"), 400},
    {"Host with a space", get("/", "Host: a b\r\n"), 400},
    {"empty Host", get("/", "Host:\r\n"), 400},
    {"Host with userinfo", get("/", "Host: user@victim.example\r\n"), 400},
    {"Host with a list", get("/", "Host: victim.example, evil.example\r\n"), 400},
    {"Host with a bad port", get("/", "Host: victim.example:99999\r\n"), 400},
    {"two Host fields", get("/", "Host: victim.example\r\nHost: evil.example\r\n"), 400},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400},
    {"absolute-form with an invalid Host is still refused",
     get("http://victim.example/", "Host: a b\r\n"), 400},
    {"HTTP/1.0 without Host goes to the upstream's own host", "GET /old HTTP/1.0\r\n\r\n", 200, true, "/old",
     "127.0.0.1:{origin_port}"},
    {"Host normalized: case, trailing dot, default port", get("/n", "Host: API.Example.:80\r\n"), 200, true, "/n",
     "api.example"},
    {"Connection naming Host cannot strip it", get("/c", "Host: h.example\r\nConnection: Host, X-Hop\r\nX-Hop: 1\r\n"),
     200, true, "/c", "h.example", {"X-Hop"}},
    {"a target byte >= 0x80", get("/caf\xc3\xa9", "Host: x\r\n"), 400},
    {"a target with a control character", get("/\x01", "Host: x\r\n"), 400},
    {"authority-form", get("victim.example:80", "Host: x\r\n"), 400},
    {"a relative target", get("foo", "Host: x\r\n"), 400},
    {"asterisk-form for GET", get("*", "Host: x\r\n"), 400},
    {"absolute-form with userinfo", get("http://u@victim.example/", "Host: x\r\n"), 400},
    {"absolute-form with a fragment", get("http://victim.example/#x", "Host: x\r\n"), 400},
    {"a scheme other than http(s)", get("ftp://victim.example/", "Host: x\r\n"), 400},

    // ---- Unkeyed fields that frameworks trust to answer for another method, path or scheme -----
    {"method-override, original-URL and forwarded port/scheme/prefix fields are stripped",
     get("/mo", "Host: x\r\nX-HTTP-Method-Override: DELETE\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n"
                "X-Forwarded-Port: 443\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Prefix: /evil\r\nX-Host: evil\r\n"),
     200, true, "/mo", "x",
     {"X-HTTP-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Port", "X-Forwarded-Scheme",
      "X-Forwarded-Prefix", "X-Host"}},
    {"a client's Forwarded is kept with this hop appended last; its X-Forwarded-Host is replaced",
     get("/fw", "Host: x\r\nForwarded: for=1.2.3.4;host=evil.example\r\nX-Forwarded-Host: evil.example\r\n"), 200, true,
     "/fw", "x", {},
     {{"Forwarded", R"(for=1.2.3.4;host=evil.example, for="127.0.0.1";host="x";proto=http)"},
      {"X-Forwarded-Host", "x"}}},

    // ---- Trailers never become headers ---------------------------------------------------------
    {"trailer fields are dropped, the head's Host kept",
     "POST /t HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\nhi\r\n0\r\nHost: evil.example\r\nAuthorization: Bearer stolen\r\nX-Original-URL: /admin\r\n\r\n",
     200, true, "/t", "h.example", {"Authorization", "X-Original-URL"}},

    // ---- Framing: request smuggling shapes --------------------------------------------------
    {"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
     400},
    {"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400},
    {"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
    {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
    {"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400},
    {"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
    {"TE with a space before the colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
     400},
    // RFC 9112 §5.2 lets a server replace obs-fold with SP instead of refusing it (Beast does):
    // the origin gets one unambiguous line, and a folded Transfer-Encoding is no framing field.
    {"TE in an obs-fold is part of the previous value", "POST /f HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
     200, true, "/f", "x", {"Transfer-Encoding"}, {{"X-A", "1 Transfer-Encoding: chunked"}}},
    {"two differing Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
     400},
    {"Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 5\r\n\r\nabcde", 400},
    {"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400},
    {"Content-Length not a number", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n", 400},
    {"chunk size not hex", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},

    // ---- Syntax ---------------------------------------------------------------------------------
    {"bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", 400},
    {"a control character in a field value", get("/", "Host: x\r\nX-A: a\x01" "b\r\n"), 400},
    {"a NUL in a field value", get("/", std::string("Host: x\r\nX-A: a\0b\r\n", 19)), 400},
    {"obs-fold is unfolded to a space", get("/o", "Host: x\r\nX-A: a\r\n b\r\n"), 200, true, "/o", "x", {},
     {{"X-A", "a b"}}},
    {"a field without a colon", get("/", "Host x\r\n"), 400},
    {"HTTP/0.9", "GET /\r\n\r\n", 400},
    {"an unknown version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400},
    {"garbage", "GARBAGE\r\n\r\n", 400},
    {"an oversize head", get("/", "Host: x\r\nX-Big: " + std::string(5000, 'a') + "\r\n"), 431},
    {"an oversize body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n", 413},

    // ---- Slow clients -------------------------------------------------------------------------
    {"slowloris: a head that never ends", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n", 408},
    {"slowloris: a body that never ends", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 408},
};

std::string fill(std::string text, std::uint16_t origin_port) {
    const std::string slot = "{origin_port}";
    if (auto at = text.find(slot); at != std::string::npos) text.replace(at, slot.size(), std::to_string(origin_port));
    return text;
}

}  // namespace

TEST_CASE("hostile requests: each gets its answer, and the origin sees only what is safe") {
    TestOrigin origin([](const OriginRequest&) { return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "ok"}; });
    Daemon cachalot(proxy_config(origin.port(), kLimits));
    for (const auto& c : kCases) {
        INFO(c.name);
        const auto before = origin.request_count();
        Client client(cachalot.port());
        client.send_raw(c.raw);
        auto res = client.read_response();
        CHECK(res.result_int() == c.status);
        if (!c.forwarded) {
            // Refused: answered, closed, and nothing reached the origin.
            CHECK(res["Connection"] == "close");
            CHECK(client.closed_by_peer());
            CHECK(origin.request_count() == before);
            continue;
        }
        REQUIRE(origin.request_count() == before + 1);
        const auto seen = origin.last_request();
        CHECK(seen.target == c.target);
        CHECK(seen.header("Host") == fill(c.host, origin.port()));
        CHECK(seen.headers.count("Host") == 1);
        for (const auto& name : c.absent) CHECK(seen.headers.count(name) == 0);
        for (const auto& [name, value] : c.present) CHECK(seen.header(name) == value);
    }
}

TEST_CASE("X-Forwarded-Host and the cache key use the host the origin was sent, never the client's other Host") {
    // An origin that reflects the host it was asked for, as many do in absolute links.
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}},
                     .body = "host=" + r.header("Host") + " xfh=" + r.header("X-Forwarded-Host")};
    });
    Daemon cachalot(proxy_config(origin.port()));
    Client attacker(cachalot.port());
    attacker.send_raw(get("http://victim.example/m?A=1", "Host: evil.example\r\nCache-Control: no-cache\r\n"));
    CHECK(attacker.read_response().body() == "host=victim.example xfh=victim.example");

    auto victim = fetch(cachalot.port(), "/m?A=1", "GET", {{"Host", "victim.example"}});
    CHECK(victim.body() == "host=victim.example xfh=victim.example");
    CHECK(std::string(victim["Cache-Status"]).find("hit") != std::string::npos);
}

TEST_CASE("a Host with a path cannot plant a response under another URL's key") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "target=" + r.target};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/1k", "GET", {{"Host", "victim.example/static123"}}).result_int() == 400);
    auto res = fetch(cachalot.port(), "/static123/1k", "GET", {{"Host", "victim.example"}});
    CHECK(res.body() == "target=/static123/1k");
    CHECK(origin.request_count() == 1);
}

TEST_CASE("a GET with a body is forwarded with it, and its response is neither stored nor shared") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "query=" + r.body};
    });
    Daemon cachalot(proxy_config(origin.port()));
    auto with_body = fetch(cachalot.port(), "/search", "GET", {}, "evil");
    CHECK(with_body.body() == "query=evil");
    CHECK(std::string(with_body["Cache-Status"]).find("fwd=bypass; detail=request-body") != std::string::npos);
    CHECK(origin.last_request().body == "evil");

    auto plain = fetch(cachalot.port(), "/search");
    CHECK(plain.body() == "query=");  // from the origin: nothing was stored under the URL
    CHECK(origin.request_count() == 2);
}

TEST_CASE("an unknown method answered 2xx does not invalidate, a known unsafe one does") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = r.method};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/r").body() == "GET");
    CHECK(fetch(cachalot.port(), "/r", "FOO").result_int() == 200);
    CHECK(fetch(cachalot.port(), "/r").body() == "GET");
    CHECK(origin.request_count() == 2);  // still a hit
    CHECK(fetch(cachalot.port(), "/r", "DELETE").result_int() == 200);
    CHECK(fetch(cachalot.port(), "/r").body() == "GET");
    CHECK(origin.request_count() == 4);  // the DELETE emptied it
}

// ---- A hostile or buggy origin ---------------------------------------------------------------

TEST_CASE("bytes an origin sends after its response never become another request's response") {
    const std::string poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nCache-Control: max-age=60\r\n\r\nPOISON";
    TestOrigin origin([&](const OriginRequest& r) {
        if (r.target == "/first") return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "ok", .then_send = poison};
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "fresh"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/first").body() == "ok");
    // The unsolicited bytes are in cachalot's socket buffer once the origin has written them.
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         origin.unsolicited_writes() == 0 && std::chrono::steady_clock::now() < deadline;)
        std::this_thread::sleep_for(1ms);
    REQUIRE(origin.unsolicited_writes() == 1);
    auto victim = fetch(cachalot.port(), "/victim");
    CHECK(victim.body() == "fresh");
    CHECK(fetch(cachalot.port(), "/victim").body() == "fresh");  // and what was stored is the real one
    CHECK(origin.connections() == 2);
}

TEST_CASE("a response ended by the connection's close is not pooled: the next POST gets a new connection") {
    TestOrigin origin([](const OriginRequest& r) {
        if (r.target == "/eof") return Reply{.raw = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\nuntil close"};
        return Reply{.body = "posted"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/eof").body() == "until close");
    auto res = fetch(cachalot.port(), "/p", "POST", {}, "x");  // never retried: a dead pooled connection would be a 502
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "posted");
}

TEST_CASE("origin responses that cannot be passed on faithfully are 502") {
    auto raw = GENERATE(as<std::string>{},
                        // a coding the client would get still applied, with no Content-Encoding to say so
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                        "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok",
                        "HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok",
                        "HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nok");
    INFO(raw);
    TestOrigin origin([&](const OriginRequest&) { return Reply{.raw = raw}; });
    Daemon cachalot(proxy_config(origin.port()));
    CHECK(fetch(cachalot.port(), "/").result_int() == 502);
}

TEST_CASE("trailer fields of an origin's chunked response are not merged into its header") {
    TestOrigin origin([](const OriginRequest&) {
        return Reply{.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n"
                            "2\r\nok\r\n0\r\nSet-Cookie: session=evil\r\nCache-Control: no-store\r\n\r\n"};
    });
    Daemon cachalot(proxy_config(origin.port()));
    auto res = fetch(cachalot.port(), "/");
    CHECK(res.body() == "ok");
    CHECK(res.count("Set-Cookie") == 0);
    CHECK(res["Cache-Control"] == "max-age=60");
    CHECK(std::string(res["Cache-Status"]).find("stored") != std::string::npos);
}
