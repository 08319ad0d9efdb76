#pragma once
// TLS for the integration tests: certificates made at run time by a throwaway CA, and a TLS
// front that terminates TLS for a TestOrigin (harness.hpp).
//
//   TestPki pki;                                        // CA, good/expired/wrong-name/untrusted
//   TestOrigin origin;
//   TlsFront front(origin.port(), pki.path("server.pem"), pki.path("server.key"));
//   // upstream: {host: 127.0.0.1, port: front.port(), tls: {ca_file: pki.path("ca.pem")}}

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace cachalot::test {

/// Keys and certificates made with the openssl CLI in a fresh temporary directory:
///   ca.pem, ca.key             the test CA
///   server.pem, server.key     for DNS:localhost and IP:127.0.0.1, by the CA
///   expired.pem                the same key and names, by the CA, expired yesterday
///   wrong_name.pem             the same key, for DNS:other.example only, by the CA
///   untrusted.pem              the same key and names, by another CA
///   client.pem, client.key     a client certificate (CN=cachalot), by the CA
class TestPki {
public:
    TestPki();
    std::string path(const std::string& file) const { return dir_ + "/" + file; }

private:
    std::string dir_;
};

/// Terminates TLS on a free loopback port with `certificate` and `key`, and passes the bytes
/// both ways to `backend_port` on 127.0.0.1 (a TestOrigin). With `client_ca`, clients must
/// present a certificate that CA signed. Session tickets are on (OpenSSL's defaults).
class TlsFront {
public:
    TlsFront(std::uint16_t backend_port, const std::string& certificate, const std::string& key,
             const std::string& client_ca = "");
    ~TlsFront();
    TlsFront(const TlsFront&) = delete;

    std::uint16_t port() const { return port_; }
    /// Handshakes completed, and of those the ones that resumed a session.
    std::size_t handshakes() const { return handshakes_.load(); }
    std::size_t resumed() const { return resumed_.load(); }
    /// Handshakes that failed (the client refused the certificate, or sent none when one was required).
    std::size_t failed() const { return failed_.load(); }

private:
    boost::asio::io_context ioc_;
    boost::asio::ssl::context context_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint16_t backend_port_;
    std::uint16_t port_ = 0;
    std::atomic<std::size_t> handshakes_{0}, resumed_{0}, failed_{0};
    std::thread thread_;
};

}  // namespace cachalot::test
