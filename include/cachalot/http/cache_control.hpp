#pragma once
// Cache-Control (RFC 9111 §5.2) for requests and responses, and HTTP dates (RFC 9110 §5.6.7).
// Pure functions: no I/O, the current time is passed in where it matters.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::http {

using Seconds = std::chrono::seconds;
using Time = std::chrono::sys_seconds;

/// The largest delta-seconds value kept (RFC 9111 §1.2.2): larger ones are clamped to it.
inline constexpr Seconds kMaxDelta{2147483648LL};

/// The directives of one message's Cache-Control fields. Directive names are matched
/// case-insensitively; unknown extensions are ignored.
///
/// Where RFC 9111 leaves a choice, the stricter reading is taken (§4.2.1): a directive given
/// twice with different values, or with a value that is not a number, counts as 0 (so the
/// response is stale at once), and the caller lets restrictive directives win.
struct CacheControl {
    // Response directives (§5.2.2)
    std::optional<Seconds> max_age;  // also a request directive
    std::optional<Seconds> s_maxage;
    bool no_cache = false;                 // bare no-cache (request or response)
    std::vector<std::string> no_cache_fields;  // no-cache="field, …" (lower-case)
    bool no_store = false;                 // request or response
    bool private_ = false;                 // bare private
    std::vector<std::string> private_fields;   // private="field, …" (lower-case)
    bool public_ = false;
    bool must_revalidate = false;
    bool proxy_revalidate = false;
    bool no_transform = false;
    bool must_understand = false;
    bool immutable = false;                          // RFC 8246
    std::optional<Seconds> stale_while_revalidate;   // RFC 5861
    std::optional<Seconds> stale_if_error;           // RFC 5861, request or response

    // Request directives (§5.2.1)
    std::optional<Seconds> max_stale;  // bare max-stale = kMaxDelta (any staleness)
    std::optional<Seconds> min_fresh;
    bool only_if_cached = false;

    /// The field did not parse as a directive list: an unterminated quoted string, a directive
    /// name that is not a token, or text after a quoted value. What follows the fault is not
    /// trusted, so a malformed response Cache-Control makes the response not storable.
    bool malformed = false;
};

/// Parses the value of every Cache-Control field line of a message, joined with ", ".
CacheControl parse_cache_control(std::string_view value);

/// A targeted cache-control field's value (CDN-Cache-Control and the like, RFC 9213) as the
/// Cache-Control value it stands for. It is a Dictionary (RFC 8941) whose known directives have
/// fixed types: max-age, s-maxage, stale-while-revalidate and stale-if-error non-negative
/// Integers; no-store, no-cache, private, public, must-revalidate, proxy-revalidate,
/// no-transform, must-understand and immutable Booleans (no-cache and private also a String of
/// field names). Nothing when it is not a valid Dictionary or a known directive has another type:
/// then the field is ignored as a whole (RFC 9213 §2.1). Unknown directives are dropped.
std::optional<std::string> targeted_cache_control(std::string_view value);

/// Parses an HTTP-date in any of its three formats (IMF-fixdate, RFC 850, asctime). `now`
/// places RFC 850's two-digit years (RFC 9110 §5.6.7). Nothing for an invalid date.
std::optional<Time> parse_http_date(std::string_view text, Time now);

/// Formats an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string format_http_date(Time t);

/// Parses delta-seconds (1*DIGIT), clamping at kMaxDelta. Nothing when not all digits.
std::optional<Seconds> parse_delta_seconds(std::string_view text);

}  // namespace cachalot::http
