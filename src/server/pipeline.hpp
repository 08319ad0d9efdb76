#pragma once
// The request pipeline: sequencing only. The decisions are the cache policy's
// (cache/policy.hpp), one fetch per key is the fetch lock's (cache/fetch_lock.hpp), what is
// said about the answer is one cache::Outcome. The steps, in the order a request meets them
// and in the order pipeline.cpp defines them:
//
//   receive   the route; its request_headers applied; then one Parsed value, never changed
//             again: route, method, cache key, request directives, whether the cache is used
//   purge     PURGE from an allowed network (purge_method.allow) purges the URL, and is answered
//   bypass    not for the cache: forwarded as it is; a successful unsafe method invalidates
//             what is stored for its URI (RFC 9111 §4.4)
//   lookup    L1, then L2; the primary entry names the Vary fields, the request picks the variant;
//             a hard-purged entry is a miss, a soft-purged one stale (cache/purge.hpp)
//   deliver   a stored response the policy lets answer: fresh, allowed stale, or stale within
//             stale-while-revalidate (then one background revalidation starts); the client's
//             If-None-Match, If-Modified-Since and Range are answered from it (304, 206, 416)
//   coalesce  one fetch per key (this node; all nodes with cache.l2.lock): the others are
//             answered from what it stores (reading its body while it still streams in), or by
//             stale-if-error when the origin failed it
//   fetch     to the origin, conditional when a stored response has validators, for the whole
//             response (the client's own conditions and range are answered here, but a range of
//             a body too large to store is asked for as it is); a failed origin is answered by
//             stale-if-error, stale_if_disconnected (unreachable) or grace
//   store     what the policy accepts goes to L1 now and to L2 through its queue, with its purge
//             tags and the time it was asked for; a body still arriving streams to the client
//             (cache::Transfer) and is stored when it completes; a 304 refreshes the stored response
//   respond   Cache-Status rendered and the outcome recorded in the metrics, once per request

#include "cachalot/cache/fetch_lock.hpp"
#include "cachalot/cache/outcome.hpp"
#include "cachalot/cache/policy.hpp"
#include "cachalot/cache/tiered_cache.hpp"
#include "cachalot/cache/transfer.hpp"
#include "cachalot/config/config.hpp"
#include "cachalot/core/cidr.hpp"
#include "cachalot/core/clock.hpp"
#include "cachalot/core/byte_budget.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/pool.hpp"
#include "core/net.hpp"
#include "server/messages.hpp"

#include <optional>
#include <vector>

namespace cachalot::server {

/// A response and what to record about how it was made.
struct Answer {
    Response response;  // with its body; only its head when the body streams
    /// Set when the body streams from the origin: the client's place in it. The response then
    /// has no framing fields: the session frames it (Content-Length when the origin announced
    /// one, else chunked, or the connection's close for HTTP/1.0).
    std::unique_ptr<cache::Transfer::Reader> stream;
    std::optional<std::size_t> route;  // empty: no route matched
    double upstream_seconds = -1;      // negative: the origin was not asked
    cache::Outcome outcome;            // how the cache answered (routed requests)
    bool outcome_pending = false;      // recorded when the stream ends (stored, or too large)
};

class Pipeline {
public:
    /// With neither tier in `cache`, nothing is cached. `clock` gives the time every decision
    /// is made at (the system's in the daemon; a hand-moved one in tests).
    /// Bodies kept for the store while they stream are charged to `budget`.
    Pipeline(const config::Config& cfg, upstream::Origin& origin, cache::TieredCache cache, cache::FetchLock fetch_lock,
             const metrics::Metrics& metrics, core::ByteBudget& budget, core::WallClock clock = core::wall_now);

    /// Work that goes on after a request is answered (a background revalidation, a body still
    /// streaming in for the store or other clients) holds `owner` while it runs: what owns this
    /// pipeline and the origin it sends to (server::Worker's per-configuration part).
    void keep_alive_with(std::weak_ptr<const void> owner) { owner_ = std::move(owner); }

    /// Answers `request` (its body moves out). `client` describes where it came from. `upload`:
    /// the body, when it streams from the client instead (then the request's own is empty).
    /// `interim`: where the origin's interim responses to this request's own fetch go.
    net::awaitable<Answer> handle(Request& request, const ClientInfo& client, upstream::BodyReader* upload = nullptr,
                                  upstream::InterimSink* interim = nullptr);

private:
    struct Parsed;
    struct Primary;
    struct Found;
    struct Stored;
    struct Fetched;

    std::optional<Parsed> receive(Request& request, const ClientInfo& client, bool with_body) const;
    Answer purge(const Parsed& p);
    // (These two fill `answer`, handle()'s own: a response is not moved from frame to frame.)
    net::awaitable<void> bypass(const Parsed& p, std::string body, Answer& answer);
    void invalidate(const Parsed& p, const Response& response);
    std::optional<Parsed> post_as_get(const Parsed& p, const Response& response) const;
    net::awaitable<void> use_cache(const Parsed& p, Answer& answer);
    net::awaitable<Answer> answer_with(const Parsed& p, Found& found);
    net::awaitable<Found> lookup(const Parsed& p, bool l2_only = false);
    Found purged(const Parsed& p, Found found) const;
    bool serves(const Parsed& p, const cache::Entry& entry) const;
    /// `stale_since`: a soft purge made it stale then (Unix ms; 0: not purged).
    Stored judge(const Parsed& p, const cache::Entry& entry, http::Time now, store::WallMillis stale_since = 0) const;
    Answer deliver(const Parsed& p, Stored stored, std::string body, cache::Outcome outcome,
                   std::unique_ptr<cache::Transfer::Reader> stream = nullptr) const;
    void answer_conditions(const Parsed& p, Answer& answer, http::Time now) const;
    void revalidate_in_background(const Parsed& p, const Found& found);
    net::awaitable<std::optional<Answer>> coalesce(const Parsed& p, Found& found,
                                                   std::optional<cache::FetchLock::Write>& write);
    net::awaitable<Fetched> fetch(const Parsed& p, const Found& found, std::optional<cache::FetchLock::Write>& write);
    enum class Reach { Answered, Failed, Unreachable };  // Failed: reached, but no usable answer
    net::awaitable<Reach> forward(const Parsed& p, std::string body, const Validators& validators, Answer& answer,
                                  std::unique_ptr<upstream::BodyReader>& rest);
    void store(const Parsed& p, const Found& found, Answer answer, http::Time request_time, http::Time now,
               Fetched& fetched, std::unique_ptr<upstream::BodyReader> rest,
               std::optional<cache::FetchLock::Write>& write);
    template <class Finish>
    void stream(Answer& answer, std::shared_ptr<cache::Transfer> transfer, std::unique_ptr<upstream::BodyReader> rest,
                Finish finish);
    void pass_through(Answer& answer, std::unique_ptr<upstream::BodyReader> rest);
    std::size_t store_limit() const;
    void refresh(const Parsed& p, const Found& found, Answer answer, http::Time request_time, http::Time now,
                 Fetched& fetched);
    void tag(const Parsed& p, cache::Entry& entry, const http::Fields& fields) const;
    bool put(const std::string& key, cache::Entry& entry, const std::optional<Primary>& primary,
             std::int64_t expiry_ms);
    void respond(const Parsed& p, Answer& answer) const;
    http::Time now() const;

    const config::Config& cfg_;
    upstream::Origin& origin_;
    cache::TieredCache cache_;
    cache::FetchLock fetch_lock_;
    const metrics::Metrics& metrics_;
    core::ByteBudget& budget_;
    std::vector<cache::Policy> policies_;  // per route
    std::vector<core::Network> purge_from_;  // purge_method.allow; empty: PURGE is not special
    // Response fields meant for this cache only, stripped before a response leaves (targeted
    // Cache-Control, purge tags), as configured: their field codes and names.
    std::vector<std::pair<bhttp::field, std::string>> for_this_cache_;
    core::WallClock clock_;
    std::weak_ptr<const void> owner_;
};

}  // namespace cachalot::server
