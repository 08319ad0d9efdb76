#pragma once
// TLS to upstream servers (OpenSSL through Asio's ssl::stream), for the Pool and the health
// checks. One TlsClient per upstream and thread: its SSL_CTX holds the trust store, the client
// certificate and the minimum version. Sessions are kept per server (a TlsSession the pool
// owns) and offered again on the next connection, so that a new pooled connection resumes
// instead of making a full handshake.

#include "cachalot/config/config.hpp"
#include "core/tls_stream.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace cachalot::upstream {

/// The last session one server gave (TLS 1.3 sends it after the handshake): offered on the next
/// connection to that server.
struct TlsSession {
    TlsSession() = default;
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;
    SSL_SESSION* session = nullptr;
};

class TlsClient {
public:
    /// Throws std::runtime_error naming the upstream and the file when the CA file, the client
    /// certificate or its key cannot be used.
    explicit TlsClient(const config::Upstream& upstream);
    TlsClient(const TlsClient&) = delete;
    TlsClient& operator=(const TlsClient&) = delete;

    net::ssl::context& context() { return context_; }

    /// Sets a connection up for a handshake with `server`: SNI (none for an address), the name
    /// the certificate must carry, and the session `session` holds to resume; the server's next
    /// one is kept there. `session` (null: none) must outlive the connection.
    void prepare(SSL* ssl, const config::Server& server, TlsSession* session = nullptr);

    /// Why a handshake failed, for the log: the certificate's verification error when there
    /// was one ("certificate has expired"), else the TLS error.
    static std::string describe(SSL* ssl, const beast::error_code& ec);
    /// Whether the handshake resumed a session.
    static bool resumed(SSL* ssl);

private:
    const config::Upstream& upstream_;
    net::ssl::context context_;
};

}  // namespace cachalot::upstream
