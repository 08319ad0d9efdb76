#include "upstream/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace cachalot::upstream {
namespace {

// Where a connection's TlsSession is found when its server sends a new session.
int session_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* slot = static_cast<TlsSession*>(SSL_get_ex_data(ssl, session_index()));
    if (!slot || !SSL_SESSION_is_resumable(session)) return 0;  // not kept: OpenSSL frees it
    if (slot->session) SSL_SESSION_free(slot->session);
    slot->session = session;
    return 1;  // kept: the slot owns it now
}

// The oldest OpenSSL error queued, as text (and the queue emptied).
std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown error";
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return text;
}

}  // namespace

TlsSession::~TlsSession() {
    if (session) SSL_SESSION_free(session);
}

TlsClient::TlsClient(const config::Upstream& upstream)
    : upstream_(upstream), context_(net::ssl::context::tls_client) {
    const auto& tls = upstream.tls;
    auto* ctx = context_.native_handle();
    auto fail = [&](const std::string& what) {
        throw std::runtime_error("upstream " + upstream.name + ": tls: " + what + ": " + openssl_error());
    };
    if (SSL_CTX_set_min_proto_version(ctx, tls.min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1)
        fail("min_version");
    if (tls.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (!tls.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1) fail("ca_file " + tls.ca_file);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            fail("the system CA store");
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!tls.certificate.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.certificate.c_str()) != 1)
            fail("certificate " + tls.certificate);
        if (SSL_CTX_use_PrivateKey_file(ctx, tls.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
            fail("private_key " + tls.private_key);
        if (SSL_CTX_check_private_key(ctx) != 1) fail("private_key does not match certificate");
    }
    // Sessions are kept per server by the pool (on_new_session), not in OpenSSL's cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
}

void TlsClient::prepare(SSL* ssl, const config::Server& server, TlsSession* session) {
    const auto& tls = upstream_.tls;
    const std::string& name = tls.server_name.empty() ? server.host : tls.server_name;
    beast::error_code not_address;
    net::ip::make_address(name, not_address);
    if (not_address) SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI carries names only (RFC 6066)
    if (tls.verify) {
        if (not_address) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl, name.c_str());
        } else {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
        }
    }
    if (session) {
        SSL_set_ex_data(ssl, session_index(), session);
        if (session->session) SSL_set_session(ssl, session->session);
    }
}

std::string TlsClient::describe(SSL* ssl, const beast::error_code& ec) {
    const long verified = SSL_get_verify_result(ssl);
    if (verified != X509_V_OK) return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verified);
    return ec.message();
}

bool TlsClient::resumed(SSL* ssl) { return SSL_session_reused(ssl) == 1; }

}  // namespace cachalot::upstream
