#pragma once
// The one parser for request targets and authorities (RFC 9112 §3.2, RFC 3986 §3.2). Every
// host that reaches a route match, a cache key, the origin's Host or X-Forwarded-Host comes
// out of parse_authority, so all of them agree on the same validated, normalized bytes.
// No I/O.

#include <optional>
#include <string>
#include <string_view>

namespace cachalot::http {

/// A validated `uri-host [":" port]`.
struct Authority {
    std::string host;  // lower case, no trailing dot: "api.example.com", "192.0.2.1", "[2001:db8::1]"
    std::string port;  // digits as given (leading zeros dropped), "" when absent or the default
    /// host[:port]: what the cache key, the origin's Host and X-Forwarded-Host all carry.
    std::string to_string() const { return port.empty() ? host : host + ":" + port; }
    bool operator==(const Authority&) const = default;
};

/// Parses a Host field value or the authority of an absolute URI, for `scheme` ("http" or
/// "https", whose default port is dropped). The host is a DNS-style name (letters, digits,
/// '-', '_', '.'), an IPv4 address or an IPv6 literal in brackets; the port 1-65535. Refused:
/// empty, userinfo ('@'), percent-encoding, spaces, '/', any other byte.
std::optional<Authority> parse_authority(std::string_view text, std::string_view scheme = "http");

/// A request target split into its parts (RFC 9112 §3.2).
struct RequestTarget {
    enum class Form { Origin, Absolute, Asterisk };
    Form form = Form::Origin;
    std::optional<Authority> authority;  // absolute-form only
    std::string origin_form;             // "/path?query" ("/" for "http://h" or "http://h?q"), "*"
};

/// Parses origin-form ("/p?q"), absolute-form ("http://host/p?q", scheme http or https, any
/// case) and asterisk-form ("*"). Nothing else: authority-form, a byte outside visible ASCII
/// (controls, space, DEL, >= 0x80), a fragment in absolute-form, an invalid authority.
std::optional<RequestTarget> parse_request_target(std::string_view target);

/// The path of an origin-form target, without its query.
std::string_view path_of(std::string_view origin_form);

}  // namespace cachalot::http
