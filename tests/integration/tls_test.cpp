// Upstream TLS over the wire: a TLS front (tests/support/tls_origin.hpp) before a TestOrigin,
// with certificates a throwaway CA makes at run time. A good certificate (checked by name or by
// address), a wrong name, an untrusted CA, an expired certificate, a server that does not speak
// TLS, mutual TLS, session resumption, and health checks over TLS.

#include "support/harness.hpp"
#include "support/tls_origin.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::test;
using namespace std::chrono_literals;

namespace {

const TestPki& pki() {
    static const TestPki made;  // one CA for the whole test process (openssl takes a moment)
    return made;
}

// proxy_config's upstream on `port` with `tls: {…}` (the mapping's contents).
std::string tls_config(std::uint16_t port, const std::string& tls, const std::string& upstream_extra = "") {
    return proxy_config(port, "", "    tls: {" + tls + "}\n" + upstream_extra);
}

std::string trusting() { return "ca_file: " + pki().path("ca.pem"); }

std::string series(const char* name, const std::string& labels) { return std::string(name) + "{" + labels + "}"; }

// A GET is answered 502, counted as a TLS error, logged with `log_says`, and nothing reached the origin.
bool refused_with_tls_error(Daemon& cachalot, TestOrigin& origin, const std::string& log_says) {
    const auto res = fetch(cachalot.port(), "/");
    CHECK(res.result_int() == 502);
    CHECK(await_metric(cachalot.admin_port(), "cachalot_upstream_errors_total{reason=\"tls\",upstream=\"origin\"}", 1) == 1);
    CHECK(origin.request_count() == 0);
    const auto output = cachalot.output();
    INFO(output);
    CHECK(output.find("TLS handshake with 127.0.0.1:") != std::string::npos);
    CHECK(output.find(log_says) != std::string::npos);
    return res.result_int() == 502 && origin.request_count() == 0;
}

}  // namespace

TEST_CASE("tls: a certificate from the configured CA for the server's name is accepted") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "over tls " + r.target};
    });
    TlsFront front(origin.port(), pki().path("server.pem"), pki().path("server.key"));
    SECTION("verified against server_name (also the SNI)") {
        Daemon cachalot(tls_config(front.port(), trusting() + ", server_name: localhost"));
        const auto first = fetch(cachalot.port(), "/a");
        REQUIRE(first.result_int() == 200);
        CHECK(first.body() == "over tls /a");
        CHECK(fetch(cachalot.port(), "/a").body() == "over tls /a");
        CHECK(origin.request_count() == 1);  // cached as any response
    }
    SECTION("verified against the server's address when it is configured by address") {
        Daemon cachalot(tls_config(front.port(), trusting()));
        CHECK(fetch(cachalot.port(), "/b").body() == "over tls /b");
    }
    CHECK(front.handshakes() == 1);
}

TEST_CASE("tls: a certificate for another name is refused with 502 and nothing is sent") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("wrong_name.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), trusting() + ", server_name: localhost"));
    CHECK(refused_with_tls_error(cachalot, origin, "certificate verify failed: hostname mismatch"));
}

TEST_CASE("tls: a certificate from a CA not trusted is refused with 502") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("untrusted.pem"), pki().path("server.key"));
    SECTION("the configured CA file") {
        Daemon cachalot(tls_config(front.port(), trusting()));
        CHECK(refused_with_tls_error(cachalot, origin, "certificate verify failed: unable to get local issuer certificate"));
    }
    SECTION("the system store, when no CA file is given") {
        Daemon cachalot(proxy_config(front.port(), "", "    tls: true\n"));
        CHECK(refused_with_tls_error(cachalot, origin, "certificate verify failed: unable to get local issuer certificate"));
    }
}

TEST_CASE("tls: an expired certificate is refused with 502") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("expired.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), trusting()));
    CHECK(refused_with_tls_error(cachalot, origin, "certificate verify failed: certificate has expired"));
}

TEST_CASE("tls: verify: false accepts any certificate") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("untrusted.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), "verify: false"));
    CHECK(fetch(cachalot.port(), "/").result_int() == 200);
}

TEST_CASE("tls: a server that does not speak TLS is a 502, never a plain-text fallback") {
    TestOrigin origin;
    Daemon cachalot(tls_config(origin.port(), trusting()));
    CHECK(fetch(cachalot.port(), "/").result_int() == 502);
    CHECK(origin.request_count() == 0);  // the ClientHello is no request it understands
    CHECK(await_metric(cachalot.admin_port(), "cachalot_upstream_errors_total{reason=\"tls\",upstream=\"origin\"}", 1) == 1);
}

TEST_CASE("tls: mutual TLS presents the configured client certificate") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("server.pem"), pki().path("server.key"), pki().path("ca.pem"));
    SECTION("with it, the server lets the request through") {
        Daemon cachalot(tls_config(front.port(), trusting() + ", certificate: " + pki().path("client.pem") +
                                                     ", private_key: " + pki().path("client.key")));
        CHECK(fetch(cachalot.port(), "/").result_int() == 200);
        CHECK(origin.request_count() == 1);
    }
    SECTION("without it, the server refuses: 502 with reason tls") {
        Daemon cachalot(tls_config(front.port(), trusting()));
        CHECK(fetch(cachalot.port(), "/").result_int() == 502);
        CHECK(origin.request_count() == 0);
        CHECK(await_metric(cachalot.admin_port(), "cachalot_upstream_errors_total{reason=\"tls\",upstream=\"origin\"}", 1) == 1);
    }
}

TEST_CASE("tls: a new connection to a server resumes the session of the last one") {
    // The origin closes every connection: each request needs a new one and a handshake.
    TestOrigin origin([](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = "ok", .keep_alive = false};
    });
    TlsFront front(origin.port(), pki().path("server.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), trusting()));
    for (int i = 0; i < 3; ++i) REQUIRE(fetch(cachalot.port(), "/").result_int() == 200);
    CHECK(front.handshakes() == 3);
    CHECK(front.resumed() == 2);
    CHECK(await_metric(cachalot.admin_port(), series("cachalot_upstream_tls_handshakes_total", "session=\"resumed\",upstream=\"origin\""), 2) == 2);
    CHECK(metric_value(fetch(cachalot.admin_port(), "/metrics").body(),
                       series("cachalot_upstream_tls_handshakes_total", "session=\"new\",upstream=\"origin\"")) == 1);
}

TEST_CASE("tls: active health checks speak TLS to a TLS upstream") {
    TestOrigin origin;
    TlsFront front(origin.port(), pki().path("server.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), trusting(), "    health_check: {path: /healthz, interval: 100ms}\n"));
    const auto passed = series("cachalot_upstream_health_checks_total",
                               "result=\"pass\",server=\"127.0.0.1:" + std::to_string(front.port()) + "\",upstream=\"origin\"");
    const auto until = std::chrono::steady_clock::now() + 10s;
    double seen = 0;
    while ((seen = metric_value(fetch(cachalot.admin_port(), "/metrics").body(), passed)) < 2 &&
           std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(20ms);
    CHECK(seen >= 2);
    CHECK(front.handshakes() >= 2);
}

TEST_CASE("tls: a body ended by a close without close_notify is never taken as complete") {
    // No length: the body ends with the connection, which the TLS front closes without a
    // close_notify. That could be an attacker cutting it; it is neither stored nor sent whole.
    TestOrigin origin([](const OriginRequest&) {
        return Reply{.raw = std::string("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\nthe whole body"),
                     .keep_alive = false};
    });
    TlsFront front(origin.port(), pki().path("server.pem"), pki().path("server.key"));
    Daemon cachalot(tls_config(front.port(), trusting()));
    // A 502 when the cut is seen before the head goes out, else a response cut short (the
    // client's read fails): never the whole body as a complete response.
    for (int i = 0; i < 2; ++i) {
        try {
            const auto res = fetch(cachalot.port(), "/");
            CHECK(res.result_int() == 502);
        } catch (const boost::system::system_error&) {
        }
    }
    CHECK(origin.request_count() == 2);  // nothing was stored
}
