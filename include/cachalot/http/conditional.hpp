#pragma once
// Conditional requests answered by a cache from a stored response (RFC 9110 §13, RFC 9111 §4.3.2).

#include "cachalot/http/cache_control.hpp"
#include "cachalot/http/headers.hpp"

namespace cachalot::http {

/// True when the request carries If-Match or If-Unmodified-Since: preconditions a cache
/// leaves to the origin (they guard against lost updates, and are rare on GET).
bool has_origin_precondition(const Fields& request);

/// True when the request carries If-None-Match, If-Modified-Since, Range or If-Range: what a
/// cache answers itself from a complete response (304, 206, 416; RFC 9111 §4.3.2, RFC 9110 §14).
bool has_cache_condition(const Fields& request);

/// Weak comparison of two entity-tags (RFC 9110 §8.8.3.2): W/ prefixes ignored.
bool weak_etag_match(std::string_view a, std::string_view b);

/// For a GET or HEAD answered from a stored response: true when the request's If-None-Match
/// (or, without it, If-Modified-Since) says the client's copy is current, so the answer is 304.
bool not_modified(const Fields& request, const Fields& stored, Time now);

/// The stored fields a 304 carries (RFC 9110 §15.4.5): Cache-Control, Content-Location, Date,
/// ETag, Expires, Vary, Last-Modified.
bool sent_with_304(std::string_view field_name);

}  // namespace cachalot::http
