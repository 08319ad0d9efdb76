#include "cachalot/http/freshness.hpp"

#include "cachalot/http/range.hpp"

#include <algorithm>

namespace cachalot::http {
namespace {


// The value of a field that must appear once; nothing when absent or repeated (§4.2.1 lets a
// cache treat duplicates as stale, which is what "no usable value" leads to here).
std::optional<std::string_view> single(const Fields& fields, bhttp::field name) {
    std::optional<std::string_view> value;
    for (const auto& f : fields) {
        if (f.name() != name) continue;
        if (value) return std::string_view{};  // present twice: unusable
        value = f.value();
    }
    return value;
}

}  // namespace

CacheControl cache_control_of(const Fields& fields) { return parse_cache_control(field_values(fields, "Cache-Control")); }

bool understood_status(unsigned status) {
    // The final statuses RFC 9110 defines, less 304, and 306 and 418 (reserved, unused).
    return (status >= 200 && status <= 206) || (status >= 300 && status <= 308 && status != 304 && status != 306) ||
           (status >= 400 && status <= 417) || status == 421 || status == 422 || status == 426 ||
           (status >= 500 && status <= 505);
}

bool heuristically_cacheable(unsigned status) {
    for (unsigned s : {200u, 203u, 204u, 206u, 300u, 301u, 308u, 404u, 405u, 410u, 414u, 501u})
        if (status == s) return true;
    return false;
}

Freshness freshness_lifetime(unsigned status, const Fields& response, const CacheControl& cc, Time response_time,
                             Seconds heuristic_limit) {
    if (cc.s_maxage) return {*cc.s_maxage, FreshnessSource::SMaxAge};
    if (cc.max_age) return {*cc.max_age, FreshnessSource::MaxAge};

    auto date_field = single(response, bhttp::field::date);
    std::optional<Time> date = date_field ? parse_http_date(*date_field, response_time) : std::nullopt;
    const Time date_value = date.value_or(response_time);

    if (auto expires = single(response, bhttp::field::expires)) {
        // An invalid Expires (such as "0") means already expired (§5.3).
        auto at = parse_http_date(*expires, response_time);
        if (!at) return {Seconds{0}, FreshnessSource::Expires};
        return {std::max(Seconds{0}, *at - date_value), FreshnessSource::Expires};
    }

    // A status not cacheable by default gets a heuristic too when the response is `public`
    // (RFC 9111 §4.2.2: "public" marks it as cacheable).
    if (heuristic_limit > Seconds{0} && (heuristically_cacheable(status) || cc.public_)) {
        if (auto lm_field = single(response, bhttp::field::last_modified)) {
            if (auto lm = parse_http_date(*lm_field, response_time); lm && *lm < date_value) {
                auto lifetime = std::min(heuristic_limit, (date_value - *lm) / 10);
                return {lifetime, FreshnessSource::Heuristic};
            }
        }
    }
    return {Seconds{0}, FreshnessSource::None};
}

Seconds current_age(const Fields& response, Time request_time, Time response_time, Time now) {
    // §5.1: a list-valued Age (or several lines) counts by its first member; one that is not a
    // non-negative integer makes the response unusable: as old as an age can be, so never fresh
    // and past every stale window (an Age of "old" must not read as 0, fresh).
    Seconds age_value{0};
    bool has_age = false;
    std::string_view first;
    for (const auto& f : response) {
        if (f.name() != bhttp::field::age) continue;
        has_age = true;
        first = trim(f.value().substr(0, f.value().find(',')));
        break;
    }
    if (has_age) {
        const auto parsed = parse_delta_seconds(first);
        if (!parsed) return kMaxDelta;
        age_value = *parsed;
    }
    auto date_field = single(response, bhttp::field::date);
    auto date = date_field ? parse_http_date(*date_field, response_time) : std::nullopt;
    const Seconds apparent_age = std::max(Seconds{0}, response_time - date.value_or(response_time));
    const Seconds response_delay = std::max(Seconds{0}, response_time - request_time);
    const Seconds corrected_age_value = age_value + response_delay;
    const Seconds corrected_initial_age = std::max(apparent_age, corrected_age_value);
    const Seconds resident_time = std::max(Seconds{0}, now - response_time);
    return std::min(kMaxDelta, corrected_initial_age + resident_time);
}

NotStorable storability(std::string_view method, unsigned status, const Fields& request,
                        const CacheControl& request_cc, const Fields& response, const CacheControl& response_cc) {
    if (method != "GET" && method != "HEAD") return NotStorable::Method;
    // 1xx are not final; a 206 is stored when it is one part whose place in the whole is known
    // (RFC 9111 §3.3); other statuses are stored only with explicit freshness, below.
    if (status < 200 || status > 599) return NotStorable::Status;
    if (status == 206 && !parse_content_range(field_values(response, "Content-Range"))) return NotStorable::Status;
    if (request_cc.no_store) return NotStorable::RequestNoStore;
    // must-understand (§5.2.2.3): a cache that knows the status's caching rules stores it despite
    // the no-store that comes with it for caches that do not; an unknown status is not stored.
    if (response_cc.must_understand) {
        if (!understood_status(status)) return NotStorable::Status;
    } else if (response_cc.no_store) {
        return NotStorable::ResponseNoStore;
    }
    // A directive list that does not parse may hide any directive, no-store included.
    if (response_cc.malformed) return NotStorable::MalformedCacheControl;
    // private="field" is stored, without those fields (cache::Policy::entry_for drops them).
    if (response_cc.private_) return NotStorable::Private;
    if (request.count(bhttp::field::authorization) > 0 && !response_cc.public_ && !response_cc.must_revalidate &&
        !response_cc.s_maxage)
        return NotStorable::Authorization;
    const bool explicit_freshness = response_cc.public_ || response_cc.max_age || response_cc.s_maxage ||
                                    response.count(bhttp::field::expires) > 0;
    if (!explicit_freshness && !heuristically_cacheable(status)) return NotStorable::NoFreshness;
    return NotStorable::None;
}

Usability usability(const CacheControl& request_cc, bool request_pragma_no_cache, const CacheControl& response_cc,
                    Seconds lifetime, Seconds age, Seconds default_swr) {
    if (response_cc.no_cache) return Usability::MustRevalidate;
    if (request_cc.no_cache) return Usability::MustRevalidate;
    if (request_pragma_no_cache) return Usability::MustRevalidate;
    if (request_cc.max_age && age > *request_cc.max_age) return Usability::MustRevalidate;

    const bool fresh = lifetime > age;
    if (fresh) {
        if (request_cc.min_fresh && lifetime - age < *request_cc.min_fresh) return Usability::MustRevalidate;
        return Usability::Fresh;
    }
    // Stale. must-revalidate and proxy-revalidate forbid serving it; so does s-maxage
    // (§5.2.2.10), unless the response grants a stale-while-revalidate window itself.
    if (response_cc.must_revalidate || response_cc.proxy_revalidate) return Usability::MustRevalidate;
    const auto staleness = age - lifetime;
    if (response_cc.s_maxage && !response_cc.stale_while_revalidate) return Usability::MustRevalidate;
    if (request_cc.max_stale && staleness <= *request_cc.max_stale) return Usability::StaleAllowed;
    const auto swr = response_cc.stale_while_revalidate.value_or(default_swr);
    if (!request_cc.min_fresh && swr > Seconds{0} && staleness <= swr) return Usability::StaleWhileRevalidate;
    return Usability::MustRevalidate;
}

StaleReason stale_on_error(const CacheControl& request_cc, const CacheControl& response_cc, Seconds staleness,
                           Seconds default_sie, Seconds grace, Seconds disconnected) {
    const auto window = request_cc.stale_if_error ? *request_cc.stale_if_error
                                                  : response_cc.stale_if_error.value_or(default_sie);
    const bool forbidden = response_cc.must_revalidate || response_cc.proxy_revalidate || response_cc.no_cache;
    if (!forbidden && window > Seconds{0} && staleness <= window) return StaleReason::StaleIfError;
    // (Nobody asked for this one: a client's no-cache, wanting the origin's word, is respected.)
    if (!forbidden && !response_cc.s_maxage && !request_cc.no_cache && disconnected > Seconds{0} &&
        staleness <= disconnected)
        return StaleReason::Disconnected;
    if (grace > Seconds{0} && staleness <= grace) return StaleReason::Grace;
    return StaleReason::None;
}

}  // namespace cachalot::http
