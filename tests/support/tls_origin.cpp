#include "support/tls_origin.hpp"

#include "support/harness.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <array>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace cachalot::test {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

void run(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
        throw std::runtime_error("TestPki: failed: " + command);
}

struct Connection {
    Connection(tcp::socket s, net::ssl::context& ctx) : tls(std::move(s), ctx), backend(tls.get_executor()) {}
    net::ssl::stream<tcp::socket> tls;
    tcp::socket backend;
    void close() {
        boost::system::error_code ignored;
        tls.lowest_layer().close(ignored);
        backend.close(ignored);
    }
};

// Copies what `from` reads to `to` until either side ends; then closes both.
template <class From, class To>
net::awaitable<void> pipe(std::shared_ptr<Connection> c, From& from, To& to) {
    std::array<char, 16384> buffer;
    for (;;) {
        auto [ec, n] = co_await from.async_read_some(net::buffer(buffer), use_tuple);
        if (ec) break;
        auto [wec, written] = co_await net::async_write(to, net::buffer(buffer.data(), n), use_tuple);
        if (wec) break;
    }
    c->close();
}

}  // namespace

TestPki::TestPki() : dir_(temp_dir()) {
    const std::string d = dir_ + "/";
    const std::string key = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    const std::string sign = "openssl x509 -req -copy_extensions copy -set_serial 0x";
    run(key + "-x509 -days 2 -subj /CN=cachalot-test-ca -keyout " + d + "ca.key -out " + d + "ca.pem");
    run(key + "-x509 -days 2 -subj /CN=other-ca -keyout " + d + "other_ca.key -out " + d + "other_ca.pem");
    run(key + "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + d +
        "server.key -out " + d + "server.csr");
    run("openssl req -new -key " + d + "server.key -subj /CN=other.example -addext subjectAltName=DNS:other.example -out " +
        d + "wrong_name.csr");
    run(key + "-subj /CN=cachalot -keyout " + d + "client.key -out " + d + "client.csr");
    const std::string by_ca = " -CA " + d + "ca.pem -CAkey " + d + "ca.key";
    run(sign + "1 -days 2 -in " + d + "server.csr" + by_ca + " -out " + d + "server.pem");
    run(sign + "2 -days -1 -in " + d + "server.csr" + by_ca + " -out " + d + "expired.pem");
    run(sign + "3 -days 2 -in " + d + "wrong_name.csr" + by_ca + " -out " + d + "wrong_name.pem");
    run(sign + "4 -days 2 -in " + d + "server.csr -CA " + d + "other_ca.pem -CAkey " + d + "other_ca.key -out " + d +
        "untrusted.pem");
    run(sign + "5 -days 2 -in " + d + "client.csr" + by_ca + " -out " + d + "client.pem");
}

TlsFront::TlsFront(std::uint16_t backend_port, const std::string& certificate, const std::string& key,
                   const std::string& client_ca)
    : context_(net::ssl::context::tls_server),
      acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}),
      backend_port_(backend_port) {
    port_ = acceptor_.local_endpoint().port();
    context_.use_certificate_chain_file(certificate);
    context_.use_private_key_file(key, net::ssl::context::pem);
    // Resumption needs a session id context whenever client certificates are verified.
    static const unsigned char id[] = "cachalot-test";
    SSL_CTX_set_session_id_context(context_.native_handle(), id, sizeof id - 1);
    if (!client_ca.empty()) {
        context_.load_verify_file(client_ca);
        context_.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
    }
    net::co_spawn(
        ioc_,
        [this]() -> net::awaitable<void> {
            for (;;) {
                auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
                if (ec) co_return;
                auto c = std::make_shared<Connection>(std::move(socket), context_);
                net::co_spawn(
                    ioc_,
                    [this, c]() -> net::awaitable<void> {
                        auto [hec] = co_await c->tls.async_handshake(net::ssl::stream_base::server, use_tuple);
                        if (hec) {
                            ++failed_;
                            c->close();
                            co_return;
                        }
                        ++handshakes_;
                        if (SSL_session_reused(c->tls.native_handle())) ++resumed_;
                        auto [cec] = co_await c->backend.async_connect(
                            {net::ip::make_address("127.0.0.1"), backend_port_}, use_tuple);
                        if (cec) {
                            c->close();
                            co_return;
                        }
                        net::co_spawn(ioc_, pipe(c, c->tls, c->backend), net::detached);
                        net::co_spawn(ioc_, pipe(c, c->backend, c->tls), net::detached);
                    },
                    net::detached);
            }
        },
        net::detached);
    thread_ = std::thread([this] { ioc_.run(); });
}

TlsFront::~TlsFront() {
    ioc_.stop();
    thread_.join();
}

}  // namespace cachalot::test
