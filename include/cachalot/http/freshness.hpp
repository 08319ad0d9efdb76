#pragma once
// RFC 9111 as a shared cache, as pure functions of headers and times: may a response be stored
// (§3), how long is it fresh (§4.2.1), how old is it (§4.2.3), may a stored response answer a
// request without going to the origin (§4.2, §5.2.1).
//
// The TTL arithmetic, in one place:
//   freshness_lifetime = s-maxage, else max-age, else Expires − Date, else (heuristic, for
//                        statuses cacheable by default with a Last-Modified) 10 % of
//                        Date − Last-Modified, capped by the caller's heuristic limit; else 0.
//   current_age        = max(apparent age, Age + response delay) + time resident in the cache.
//   fresh              ⇔ freshness_lifetime > current_age.

#include "cachalot/http/cache_control.hpp"
#include "cachalot/http/headers.hpp"

#include <string_view>

namespace cachalot::http {

/// Where a freshness lifetime came from.
enum class FreshnessSource { SMaxAge, MaxAge, Expires, Heuristic, None };

struct Freshness {
    Seconds lifetime{0};
    FreshnessSource source = FreshnessSource::None;
};

/// The Cache-Control of a message: every Cache-Control field line, as one list.
CacheControl cache_control_of(const Fields& fields);

/// The final statuses whose caching rules this cache implements (those RFC 9110 defines, but
/// 304): what `must-understand` asks about (RFC 9111 §5.2.2.3).
bool understood_status(unsigned status);

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1): 200, 203, 204, 206,
/// 300, 301, 308, 404, 405, 410, 414, 501.
bool heuristically_cacheable(unsigned status);

/// The freshness lifetime of a response for a shared cache. `response_time` stands in for a
/// missing or invalid Date. `heuristic_limit` caps the Last-Modified heuristic (0 disables it).
Freshness freshness_lifetime(unsigned status, const Fields& response, const CacheControl& cc, Time response_time,
                             Seconds heuristic_limit);

/// The response's current age (§4.2.3). `request_time` and `response_time` are when the
/// request was sent to the origin and when the response arrived. An Age whose first member is
/// not a non-negative integer gives kMaxDelta: never fresh (§5.1).
Seconds current_age(const Fields& response, Time request_time, Time response_time, Time now);

/// Why a response is not stored; None when it may be. (cache::Detail names them for metrics and
/// Cache-Status.)
enum class NotStorable {
    None,
    Method,            // only GET and HEAD responses are stored
    Status,            // not a final status this cache understands
    RequestNoStore,    // the request said no-store
    ResponseNoStore,   // the response said no-store
    Private,           // private: for one user's cache only
    Authorization,     // the request carried credentials and the response did not allow sharing
    NoFreshness,       // nothing says how long it may be reused, and the status is not cacheable by default
    MalformedCacheControl,  // Cache-Control does not parse: it may hide a no-store
};

/// May a shared cache store this response to this request (RFC 9111 §3, §3.5)?
NotStorable storability(std::string_view method, unsigned status, const Fields& request,
                        const CacheControl& request_cc, const Fields& response, const CacheControl& response_cc);

/// What a stored response can do for a request, without the origin.
enum class Usability {
    Fresh,           // serve it
    StaleAllowed,    // stale, but the request's max-stale accepts it: serve it
    StaleWhileRevalidate,  // stale within its stale-while-revalidate window: serve it, revalidate in the background
    MustRevalidate,  // ask the origin first (conditional request when validators exist)
};

/// Request and response directives applied to a stored response's lifetime and age
/// (§4.2, §4.2.4, §5.2.1, §5.2.2.2, §5.2.2.4, §5.2.2.8). Pass request_pragma_no_cache when the
/// request has `Pragma: no-cache` and no Cache-Control field: it then counts as no-cache (§5.4).
/// `default_swr` is the stale-while-revalidate window for responses that set none (RFC 5861;
/// an explicit stale-while-revalidate also lifts s-maxage's ban on serving stale, as CDNs do).
Usability usability(const CacheControl& request_cc, bool request_pragma_no_cache, const CacheControl& response_cc,
                    Seconds lifetime, Seconds age, Seconds default_swr = Seconds{0});

/// Why a stored response stands in for a failed origin answer.
enum class StaleReason { None, StaleIfError, Disconnected, Grace };

/// May a stored response `staleness` past its freshness (negative: still fresh) answer a
/// request whose origin fetch failed (unreachable, timed out, 500/502/503/504)? stale-if-error
/// (RFC 5861): the request's directive, else the response's, else `default_sie`; never past
/// must-revalidate, proxy-revalidate or no-cache. Then, when the origin could not be reached at
/// all, `disconnected` (RFC 9111 §4.2.4; 0 when it was reached), never past those nor s-maxage,
/// nor for a request that says no-cache.
/// Then `grace`, whatever the directives say.
StaleReason stale_on_error(const CacheControl& request_cc, const CacheControl& response_cc, Seconds staleness,
                           Seconds default_sie, Seconds grace, Seconds disconnected = Seconds{0});

}  // namespace cachalot::http
