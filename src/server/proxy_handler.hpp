#pragma once
// The request pipeline, in the order a request meets it:
//   route → (cacheable?) → key → lookup (L1, then L2) → usability
//     → fresh: deliver the stored response
//     → stale within stale-while-revalidate: deliver it, revalidate once in the background
//     → otherwise: coalesce (one fetch per key; the others wait for it)
//         → forward to the origin (conditional when validators exist) → storable? → store → deliver
//         → origin failed: the stored response if stale-if-error or grace allow it
// Unsafe methods are forwarded and, when they succeed, invalidate what is stored for their URI.

#include "cachalot/cache/coalescer.hpp"
#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/key.hpp"
#include "cachalot/config/config.hpp"
#include "cachalot/http/freshness.hpp"
#include "cachalot/http/target.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/cache/tiered_cache.hpp"
#include "cachalot/upstream/pool.hpp"
#include "core/net.hpp"

#include <string>

namespace cachalot::server {

using Request = upstream::Request;
using Response = upstream::Response;

/// What the session learned about a request besides its message.
struct ClientInfo {
    std::string address;       // the client's IP
    http::Authority authority;  // validated and normalized; empty host for HTTP/1.0 without Host
};

/// A response and what to record about how it was made.
struct Outcome {
    Response response;
    std::optional<std::size_t> route;  // empty: no route matched
    double upstream_seconds = -1;      // negative: the origin was not asked
    std::string cache_key;             // the primary key, when the cache was consulted
    core::ByteBudget::Reservation held;  // the share of client.max_buffered_bytes its body holds
};

class ProxyHandler {
public:
    /// With neither tier in `cache`, nothing is cached. `coalescer` is shared by every worker.
    ProxyHandler(const config::Config& cfg, upstream::Pool& pool, cache::TieredCache cache,
                 cache::Coalescer& coalescer, const metrics::Metrics& metrics);

    net::awaitable<Outcome> handle(Request& request, const ClientInfo& client);

private:
    /// What the pipeline knows about a request on a caching route.
    struct Lookup {
        std::size_t route = 0;
        std::string key;  // primary key
        http::CacheControl request_cc;
        bool pragma_no_cache = false;
        bool conditional = false;                // preconditions or Range: forwarded as they are
        std::optional<cache::Entry> primary;     // what the primary key holds (names the Vary fields)
        std::optional<cache::Entry> stored;      // the stored response for this request, fresh or not
        std::string fwd = "uri-miss";            // Cache-Status fwd= if the origin is asked
    };
    /// A stored response judged against the current time.
    struct Judged {
        Response response;  // status and fields of the stored response (no body yet)
        http::CacheControl response_cc;
        http::Seconds lifetime{0}, age{0};
        http::Seconds staleness() const { return age - lifetime; }
    };
    /// What a fetch leaves behind besides the client's response.
    struct Fetched {
        std::shared_ptr<const cache::Entry> stored;  // what was stored (for the waiters)
        bool origin_failed = false;
    };

    net::awaitable<Outcome> serve(Request& request, const ClientInfo& client);
    net::awaitable<void> find(const Request& request, Lookup& lookup, bool l2_only = false);
    Judged judge(const cache::Entry& entry, const config::RouteCache& rules, unsigned version, http::Time now) const;
    /// The stored response as this request gets it: 304 when its conditions say so, HEAD
    /// without body, with Age.
    Response deliver(Judged& judged, std::string body, const http::Fields& request, bhttp::verb method,
                     unsigned version) const;
    /// A request served by another request's fetch (`Cache-Status: …; collapsed`), counted.
    Response collapsed(const cache::Entry& entry, const Request& request, const Lookup& lookup) const;
    /// Whether stale-if-error or grace let the judged stored response answer for a failed origin.
    http::StaleReason stale_on_error(const Lookup& lookup, const Judged& judged) const;
    /// Forwards a cache miss or revalidation, stores what may be stored, and falls back to the
    /// stored response when the origin fails and stale-if-error or grace allow it.
    net::awaitable<Outcome> fetch(Request& request, const ClientInfo& client, Lookup& lookup, Fetched& fetched);
    /// Cross-node coalescing (cache.l2.lock): when another node holds the key's Redis lock,
    /// waits for its entry to reach L2 (until the lock is released or expires). True when
    /// `lookup.stored` now holds a response fetched by the other node.
    net::awaitable<bool> wait_for_other_node(const Request& request, Lookup& lookup);
    /// stale-while-revalidate: one background revalidation per key (none if a fetch is in flight).
    void revalidate_in_background(const Request& request, const ClientInfo& client, const Lookup& lookup);
    /// When a response carries a targeted field (RFC 9213), the fields that decide this cache's
    /// policy: the first targeted field present in place of Cache-Control, and no Expires.
    std::optional<http::Fields> targeted_view(const http::Fields& fields) const;
    /// Sends the request to the route's origin; false when the origin failed (out then holds
    /// the proxy's own 502 or 504).
    net::awaitable<bool> forward(Request& request, const ClientInfo& client, const config::Route& route, Outcome& out);
    void invalidate(std::string_view target, const Response& response, const http::Authority& authority,
                    const Request& request, const config::Route& route);
    /// The freshness lifetime the route gives a response: the origin's (or the heuristic's),
    /// replaced by the route's TTL for its status or default when the origin says nothing (or
    /// always, with override_origin), capped by max_ttl.
    http::Seconds lifetime_for(const config::RouteCache& rc, unsigned status, const http::Fields& fields,
                               const http::CacheControl& cc, http::Time response_time) const;
    /// The route's TTL for this status, if it sets one.
    static std::optional<http::Seconds> route_ttl(const config::RouteCache& rc, unsigned status);
    /// How long past its freshness a response is kept: for revalidation (cache.keep), and for
    /// its stale-while-revalidate, stale-if-error and grace windows.
    std::chrono::milliseconds retention(const config::RouteCache& rc, const http::CacheControl& cc) const;
    /// Stores `entry` under `key` (and, with Vary, under its variant key) until `expiry_ms`
    /// plus its retention; false if no tier took it.
    bool store(const std::string& key, cache::Entry& entry, const std::optional<cache::Entry>& primary,
               std::int64_t expiry_ms, std::chrono::milliseconds retention);

    const config::Config& cfg_;
    upstream::Pool& pool_;
    cache::TieredCache cache_;
    cache::Coalescer& coalescer_;
    const metrics::Metrics& metrics_;
    std::vector<cache::KeyRules> key_rules_;  // per route, built once from the config
    std::vector<std::string> targeted_fields_;  // cache.targeted_field (if set), then CDN-Cache-Control
};

/// A short plain-text response generated by the proxy itself (404, 502, 504, …); a 503 carries
/// Retry-After: 1.
Response make_error_response(unsigned status, unsigned version, std::string_view detail = {});

}  // namespace cachalot::server
