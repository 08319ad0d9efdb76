#pragma once
// How the cache answered one request, as one typed value. The pipeline fills it in; it is
// rendered once, as this cache's Cache-Status entry (RFC 9211), and recorded once in the
// metrics. Every word of every vocabulary (Cache-Status parameters, metric labels) is written
// here and nowhere else.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachalot::cache {

/// How the cache answered: cachalot_cache_requests_total{result}.
enum class Result : std::uint8_t { Hit, Miss, Revalidated, Bypass };
inline constexpr std::array<std::string_view, 4> kResultNames{"hit", "miss", "revalidated", "bypass"};

/// Why the origin was asked: Cache-Status fwd= (RFC 9211 §2.2).
/// Partial: a stored part of the response does not hold what the request asks for.
enum class Fwd : std::uint8_t { None, Bypass, UriMiss, VaryMiss, Stale, Request, Partial };
inline constexpr std::array<std::string_view, 7> kFwdNames{"",      "bypass",  "uri-miss", "vary-miss",
                                                           "stale", "request", "partial"};

/// Cache-Status detail=: why a stale response was served, why a fetched response was not
/// stored, or why the cache was not consulted. The stale reasons label
/// cachalot_stale_served_total{reason}; the not-stored reasons (and "stored") label
/// cachalot_cache_store_total{outcome}.
enum class Detail : std::uint8_t {
    None,
    // a stale response was served
    StaleWhileRevalidate,
    StaleIfError,
    Disconnected,  // the origin could not be reached at all (routes[].cache.stale_if_disconnected)
    Grace,
    // a fetched response was not stored
    Method,                 // only GET and HEAD responses are stored
    Status,                 // not a final status this cache understands (or a 304 it did not ask for)
    RequestNoStore,         // the request said no-store
    NoStore,                // the response said no-store
    Private,                // private: for one user's cache only
    Authorization,          // the request carried credentials and the response did not allow sharing
    NoFreshnessInfo,        // nothing says how long it may be reused
    MalformedCacheControl,  // Cache-Control does not parse: it may hide a no-store
    Head,                   // no body to store; a later GET fills the cache
    Conditional,            // a conditional or range request's answer
    VaryStar,               // Vary: * can never match a later request (RFC 9111 §4.1)
    SetCookie,              // sets cookies, and the route refuses to store those
    StaleOnArrival,         // already older than its freshness lifetime
    TooLarge,               // no tier took it
    OriginUnavailable,      // the origin did not answer
    OnlyIfCached,           // only-if-cached, and nothing usable was stored
    // the cache was not consulted
    RequestBody,  // a GET or HEAD with a body: its answer depends on bytes the key does not hold
};
inline constexpr std::array<std::string_view, 22> kDetailNames{
    "",
    "stale-while-revalidate",
    "stale-if-error",
    "disconnected",
    "grace",
    "method",
    "status",
    "request-no-store",
    "no-store",
    "private",
    "authorization",
    "no-freshness-info",
    "malformed-cache-control",
    "head",
    "conditional",
    "vary-star",
    "set-cookie",
    "stale-on-arrival",
    "too-large",
    "origin-unavailable",
    "only-if-cached",
    "request-body",
};
constexpr bool is_stale_reason(Detail d) { return d >= Detail::StaleWhileRevalidate && d <= Detail::Grace; }
constexpr bool is_not_stored_reason(Detail d) { return d >= Detail::Method && d <= Detail::OnlyIfCached; }
/// The label of a stored response in cachalot_cache_store_total{outcome}.
inline constexpr std::string_view kStoredName = "stored";

constexpr std::string_view to_string(Result r) { return kResultNames[static_cast<std::size_t>(r)]; }
constexpr std::string_view to_string(Fwd f) { return kFwdNames[static_cast<std::size_t>(f)]; }
constexpr std::string_view to_string(Detail d) { return kDetailNames[static_cast<std::size_t>(d)]; }

/// What a purge covers and how: cachalot_purges_total{kind,mode} (cache/purge.hpp).
enum class PurgeKind : std::uint8_t { Url, Prefix, Tag, Group, All };
inline constexpr std::array<std::string_view, 5> kPurgeKindNames{"url", "prefix", "tag", "group", "all"};
enum class PurgeMode : std::uint8_t { Hard, Soft };
inline constexpr std::array<std::string_view, 2> kPurgeModeNames{"hard", "soft"};
constexpr std::string_view to_string(PurgeKind k) { return kPurgeKindNames[static_cast<std::size_t>(k)]; }
constexpr std::string_view to_string(PurgeMode m) { return kPurgeModeNames[static_cast<std::size_t>(m)]; }

/// What a purge did to the stored response a lookup found: cachalot_purged_lookups_total{verdict}.
enum class Purged : std::uint8_t { None, Gone, Stale };
inline constexpr std::array<std::string_view, 3> kPurgedNames{"", "gone", "stale"};

/// One request's answer, as the cache made it.
struct Outcome {
    Result result = Result::Miss;
    Fwd fwd = Fwd::None;             // None: the origin was not asked (a hit)
    unsigned fwd_status = 0;         // the origin's status; 0 when it did not answer
    bool stored = false;             // this request's fetch was stored
    bool collapsed = false;          // served by another request's fetch
    std::optional<std::int64_t> ttl;  // seconds of freshness left, when a stored response answered
    Detail detail = Detail::None;
    std::string key;  // the primary key, shown only with cache.debug_cache_status
    Purged purged = Purged::None;  // the stored response found had been purged (metrics only)
};

/// This cache's Cache-Status entry, parameters in a fixed order:
/// "NAME; hit|fwd=…; fwd-status=…; stored; collapsed; ttl=…; detail=…; key=…".
std::string cache_status_entry(const Outcome& outcome, std::string_view name);

}  // namespace cachalot::cache
