#pragma once
// A route's caching policy, as pure functions of its rules, the messages and the time: may a
// fetched response be stored and for how long, what does a stored response become after a 304,
// and what may a stored response do for a request (fresh, stale-while-revalidate, must
// revalidate, stale-if-error, grace). No I/O and no clock: `now` is always passed in; the only
// randomness (cache.ttl_jitter) comes from a source given at construction.
//
// The RFC 9111 arithmetic itself is in http/freshness.hpp; this is where the route's rules
// (TTLs, caps, stale windows, grace, Set-Cookie, targeted fields) are applied to it.

#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/outcome.hpp"
#include "cachalot/config/config.hpp"
#include "cachalot/http/freshness.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cachalot::cache {

/// What a request says about using stored responses.
struct RequestDirectives {
    http::CacheControl cc;
    bool pragma_no_cache = false;  // Pragma: no-cache without Cache-Control (RFC 9111 §5.4)
    bool conditional = false;  // If-Match or If-Unmodified-Since: forwarded as they are, answers not stored
    /// If-None-Match, If-Modified-Since, Range or If-Range on a request without `conditional`
    /// ones: a GET's are answered by the cache from the complete response (fetched whole).
    bool answered_here = false;
    /// Why a stored response that may not answer this request sends it to the origin.
    Fwd fwd_when_stale() const;
};
RequestDirectives request_directives(const http::Fields& request);

/// A stored response judged at some time.
struct Judged {
    http::CacheControl cc;   // the directives that decide (targeted field, else Cache-Control)
    http::Seconds lifetime{0};  // freshness lifetime under the route's rules, jitter included
    http::Seconds age{0};
    http::Seconds remaining() const { return lifetime - age; }
    http::Seconds staleness() const { return age - lifetime; }
};

/// A judged response that a soft purge made stale at `since` (Unix ms): its freshness ends
/// there if it had not already, so that its stale windows (stale-while-revalidate,
/// stale-if-error, grace) count from the purge. Never lengthens the lifetime.
Judged stale_since(Judged judged, std::chrono::milliseconds since, http::Time now);

/// What may be stored of a fetched response, and until when.
struct StoreDecision {
    Detail refused = Detail::None;  // None: store it
    Judged judged;                  // as judged on arrival
    std::int64_t lifetime_jitter = 0;  // seconds, already in judged.lifetime
    std::int64_t expiry_ms = 0;        // Unix ms: when the stored copy is dropped (retention included)
};

class Policy {
public:
    /// Random numbers in [-1, 1] for cache.ttl_jitter.
    using Uniform = std::function<double()>;
    /// `route` and `cache` are kept by reference.
    Policy(const config::RouteCache& route, const config::Cache& cache, Uniform uniform = {});

    /// The fields that decide this cache's policy for a response's `fields`: a copy in which the
    /// first targeted field present (cache.targeted_field, then CDN-Cache-Control; RFC 9213)
    /// stands in for Cache-Control and Expires; nothing when none is present (the fields decide).
    std::optional<http::Fields> targeted_view(const http::Fields& fields) const;

    /// True when the response's own fields (targeted field, else Cache-Control and Expires) give
    /// it a freshness lifetime: s-maxage, max-age or Expires; not a heuristic or a route TTL.
    bool explicit_freshness(const http::Fields& response) const;

    /// Judges a stored response (`fields` are its stored fields) at `now`.
    Judged judge(const Entry& entry, const http::Fields& fields, http::Time now) const;

    /// What a judged stored response may do for a request without the origin.
    http::Usability usability(const RequestDirectives& request, const Judged& judged) const;

    /// Whether stale-if-error, the route's stale_if_disconnected (when the origin was
    /// `unreachable`: refused, reset or silent, not answering badly) or grace let a stored
    /// response answer for a failed origin: Detail::StaleIfError, Detail::Disconnected,
    /// Detail::Grace, or Detail::None.
    Detail stale_on_error(const RequestDirectives& request, const Judged& judged, bool unreachable) const;

    /// Whether a response fetched for this request is stored, judged at `now` (it was asked for
    /// at `request_time`). `head`: the request was a HEAD.
    StoreDecision decide_store(bool head, const RequestDirectives& request, const http::Fields& request_fields,
                               unsigned status, const http::Fields& response, http::Time request_time,
                               http::Time now) const;

    /// The entry to store for a response the decision accepted: its fields without Cache-Status
    /// (and without Set-Cookie unless the route stores cookies), the times, the Vary names and
    /// the request's variant.
    Entry entry_for(const StoreDecision& decision, unsigned status, const http::Fields& response, std::string body,
                    const http::Fields& request_fields, http::Time request_time, http::Time now) const;

    /// A stored entry revalidated by a 304 (RFC 9111 §4.3.4): the 304's fields replace the
    /// stored ones (but those the stored body depends on), the clock restarts, with a new jitter.
    Entry refreshed(const Entry& stored, const http::Fields& not_modified, http::Time request_time,
                    http::Time now) const;

    /// The expiry (Unix ms) for an entry judged at `now`: the end of its freshness plus how long
    /// it is kept for revalidation and its stale windows.
    std::int64_t expiry_ms(const Judged& judged, http::Time now) const;

private:
    http::Seconds lifetime(unsigned status, const http::Fields& fields, const http::CacheControl& cc,
                           http::Time response_time) const;
    std::optional<http::Seconds> route_ttl(unsigned status) const;
    std::chrono::milliseconds retention(const http::CacheControl& cc) const;
    std::int64_t jitter(http::Seconds lifetime) const;

    const config::RouteCache& route_;
    const config::Cache& cache_;
    Uniform uniform_;
    std::vector<std::string> targeted_fields_;  // cache.targeted_field (if set), then CDN-Cache-Control
};

}  // namespace cachalot::cache
