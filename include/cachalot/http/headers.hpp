#pragma once
// Pure header logic for proxying: hop-by-hop removal, forwarding headers, request framing checks.
// No I/O: functions over a header block.

#include "cachalot/core/bhttp.hpp"

#include <boost/beast/http/fields.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::http {

using Fields = boost::beast::http::fields;

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): Connection and every field it names,
/// Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Connection, Proxy-Authenticate,
/// Proxy-Authorization. Transfer-Encoding and Content-Length are re-derived from the body by
/// whoever serializes the message next.
void strip_hop_by_hop(Fields& fields);

/// What a proxy adds to a request it forwards.
struct ForwardedFor {
    std::string_view client_address;  // peer IP of the client connection
    std::string_view proto;           // "http" or "https": the scheme the client used
    std::string_view host;            // the Host the client asked for ("" if none)
};

/// The fields a request forwarded by this proxy carries in place of the client's (those for which
/// is_forwarding_field() is true): X-Forwarded-For with the client appended, and Forwarded
/// (RFC 7239) with this hop's element appended, to what earlier proxies wrote (the last element
/// is the one to trust); X-Forwarded-Proto and X-Forwarded-Host as this hop saw them (values from
/// the client cannot be trusted at the edge; no host: no X-Forwarded-Host); Via with this hop
/// appended (RFC 9110 §7.6.3).
struct Forwarding {
    std::string x_forwarded_for;
    std::string forwarded;
    std::string x_forwarded_proto;
    std::string x_forwarded_host;  // empty: not sent
    std::string via;
};
Forwarding forwarding_fields(const Fields& client_fields, const ForwardedFor& fwd, std::string_view pseudonym);

/// True for X-Forwarded-For, -Proto, -Host, Forwarded and Via: the fields forwarding replaces.
bool is_forwarding_field(std::string_view name);

/// Appends "1.1 <pseudonym>" to Via (RFC 9110 §7.6.3).
void add_via(Fields& fields, std::string_view pseudonym);

/// Checks a message head for framing that enables request smuggling or response splitting, or
/// that this proxy cannot pass on faithfully (RFC 9112 §6.3): Content-Length together with
/// Transfer-Encoding, several differing Content-Length values, a Content-Length that is not a
/// number, a Transfer-Encoding other than a single "chunked" (a "gzip, chunked" body would reach
/// the client still compressed, with no Content-Encoding to say so). Returns the reason to
/// reject, or nothing when the framing is unambiguous.
std::optional<std::string> ambiguous_framing(const Fields& fields);

/// True for methods a proxy may safely send twice (RFC 9110 §9.2.2).
bool is_idempotent(std::string_view method);

/// Case-insensitive ASCII comparison, as HTTP field names and tokens need.
bool iequals(std::string_view a, std::string_view b);

/// Without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3).
std::string_view trim(std::string_view s);

/// Removes every field whose name is one of `names` (case-insensitive), in one pass over the
/// fields (Beast's erase by name is a tree search per name, with case-insensitive compares).
void erase_named(Fields& fields, const std::vector<std::string>& names);

/// ASCII lower case.
std::string to_lower(std::string_view s);

/// Every field line named `name` (case-insensitive), joined with ", " as one list value.
std::string field_values(const Fields& fields, std::string_view name);

}  // namespace cachalot::http
