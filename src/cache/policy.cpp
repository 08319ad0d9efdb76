#include "cachalot/cache/policy.hpp"

#include "cachalot/cache/key.hpp"
#include "cachalot/http/conditional.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace cachalot::cache {
namespace {

// A field the response's private="…" names: for one user's cache only, never stored here.
bool private_field(const http::CacheControl& cc, std::string_view name) {
    return std::any_of(cc.private_fields.begin(), cc.private_fields.end(),
                       [&](const std::string& n) { return http::iequals(n, name); });
}

Detail detail_of(http::NotStorable reason) {
    switch (reason) {
        case http::NotStorable::None: return Detail::None;
        case http::NotStorable::Method: return Detail::Method;
        case http::NotStorable::Status: return Detail::Status;
        case http::NotStorable::RequestNoStore: return Detail::RequestNoStore;
        case http::NotStorable::ResponseNoStore: return Detail::NoStore;
        case http::NotStorable::Private: return Detail::Private;
        case http::NotStorable::Authorization: return Detail::Authorization;
        case http::NotStorable::NoFreshness: return Detail::NoFreshnessInfo;
        case http::NotStorable::MalformedCacheControl: return Detail::MalformedCacheControl;
    }
    return Detail::Status;
}

double default_uniform() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
}

template <class D>
http::Seconds seconds(D d) {
    return std::chrono::duration_cast<http::Seconds>(d);
}

}  // namespace

Judged stale_since(Judged judged, std::chrono::milliseconds since, http::Time now) {
    // Whole seconds since the purge, rounded up: the lifetime errs shorter.
    const auto elapsed = now.time_since_epoch() - std::chrono::floor<http::Seconds>(since);
    const auto age_at_purge = std::max(http::Seconds{0}, judged.age - std::max(http::Seconds{0}, elapsed));
    judged.lifetime = std::min(judged.lifetime, age_at_purge);
    return judged;
}

Fwd RequestDirectives::fwd_when_stale() const {
    return cc.no_cache || pragma_no_cache || cc.max_age || cc.min_fresh ? Fwd::Request : Fwd::Stale;
}

RequestDirectives request_directives(const http::Fields& request) {
    RequestDirectives d;
    d.cc = http::cache_control_of(request);
    d.pragma_no_cache = request.count(bhttp::field::cache_control) == 0 &&
                        request[bhttp::field::pragma].find("no-cache") != std::string_view::npos;
    d.conditional = http::has_origin_precondition(request);
    d.answered_here = !d.conditional && http::has_cache_condition(request);
    return d;
}

Policy::Policy(const config::RouteCache& route, const config::Cache& cache, Uniform uniform)
    : route_(route), cache_(cache), uniform_(uniform ? std::move(uniform) : Uniform(default_uniform)) {
    if (!cache.targeted_field.empty()) targeted_fields_.push_back(cache.targeted_field);
    static const std::string cdn_cache_control = "CDN-Cache-Control";  // (a literal here trips GCC 12's -Warray-bounds)
    targeted_fields_.push_back(cdn_cache_control);
}

std::optional<http::Fields> Policy::targeted_view(const http::Fields& fields) const {
    for (const auto& name : targeted_fields_) {
        const auto value = http::field_values(fields, name);
        if (value.empty()) continue;
        // Not a valid Dictionary, or a directive of the wrong type: ignored as if absent.
        const auto cc = http::targeted_cache_control(value);
        if (!cc) continue;
        http::Fields view = fields;
        view.erase(bhttp::field::cache_control);
        view.erase(bhttp::field::expires);
        if (!cc->empty()) view.set(bhttp::field::cache_control, *cc);
        return view;
    }
    return std::nullopt;
}

std::optional<http::Seconds> Policy::route_ttl(unsigned status) const {
    for (const auto& [s, ttl] : route_.status_ttl)
        if (s == status) return seconds(ttl);
    if (route_.default_ttl.count() > 0 && status >= 200 && status < 400) return seconds(route_.default_ttl);
    return std::nullopt;
}

// The origin's lifetime (or the heuristic's), replaced by the route's TTL for its status when
// the origin says nothing (or always, with override_origin), capped by max_ttl.
http::Seconds Policy::lifetime(unsigned status, const http::Fields& fields, const http::CacheControl& cc,
                               http::Time response_time) const {
    const auto origin = http::freshness_lifetime(status, fields, cc, response_time, seconds(cache_.heuristic_max_ttl));
    const bool explicit_freshness = origin.source == http::FreshnessSource::SMaxAge ||
                                    origin.source == http::FreshnessSource::MaxAge ||
                                    origin.source == http::FreshnessSource::Expires;
    auto lifetime = origin.lifetime;
    if (auto ttl = route_ttl(status); ttl && (route_.override_origin || !explicit_freshness)) lifetime = *ttl;
    if (route_.max_ttl.count() > 0) lifetime = std::min(lifetime, seconds(route_.max_ttl));
    return lifetime;
}

// How long past its freshness a response is kept: for revalidation (cache.keep), and for its
// stale-while-revalidate, stale-if-error and grace windows.
std::chrono::milliseconds Policy::retention(const http::CacheControl& cc) const {
    using std::chrono::milliseconds;
    auto window = std::max({cache_.keep, route_.stale_while_revalidate, route_.stale_if_error,
                            route_.stale_if_disconnected, route_.grace});
    if (cc.stale_while_revalidate) window = std::max<milliseconds>(window, *cc.stale_while_revalidate);
    if (cc.stale_if_error) window = std::max<milliseconds>(window, *cc.stale_if_error);
    return window;
}

// ± cache.ttl_jitter percent of the lifetime, in whole seconds.
std::int64_t Policy::jitter(http::Seconds lifetime) const {
    if (cache_.ttl_jitter == 0 || lifetime.count() <= 0) return 0;
    const double span = static_cast<double>(lifetime.count()) * cache_.ttl_jitter / 100.0;
    return std::llround(std::clamp(uniform_(), -1.0, 1.0) * span);
}

bool Policy::explicit_freshness(const http::Fields& response) const {
    const auto view = targeted_view(response);
    const auto& decisive = view ? *view : response;
    const auto source = http::freshness_lifetime(200, decisive, http::cache_control_of(decisive), http::Time{},
                                                 http::Seconds{0}).source;
    return source == http::FreshnessSource::SMaxAge || source == http::FreshnessSource::MaxAge ||
           source == http::FreshnessSource::Expires;
}

Judged Policy::judge(const Entry& entry, const http::Fields& fields, http::Time now) const {
    const auto view = targeted_view(fields);
    const auto& decisive = view ? *view : fields;
    Judged j;
    j.cc = http::cache_control_of(decisive);
    const http::Time request_time{http::Seconds{entry.request_time}};
    const http::Time response_time{http::Seconds{entry.response_time}};
    j.lifetime = lifetime(entry.status, decisive, j.cc, response_time) + http::Seconds{entry.lifetime_jitter};
    j.age = http::current_age(fields, request_time, response_time, now);
    return j;
}

http::Usability Policy::usability(const RequestDirectives& request, const Judged& judged) const {
    return http::usability(request.cc, request.pragma_no_cache, judged.cc, judged.lifetime, judged.age,
                           seconds(route_.stale_while_revalidate));
}

Detail Policy::stale_on_error(const RequestDirectives& request, const Judged& judged, bool unreachable) const {
    switch (http::stale_on_error(request.cc, judged.cc, judged.staleness(), seconds(route_.stale_if_error),
                                 seconds(route_.grace),
                                 unreachable ? seconds(route_.stale_if_disconnected) : http::Seconds{0})) {
        case http::StaleReason::StaleIfError: return Detail::StaleIfError;
        case http::StaleReason::Disconnected: return Detail::Disconnected;
        case http::StaleReason::Grace: return Detail::Grace;
        case http::StaleReason::None: break;
    }
    return Detail::None;
}

StoreDecision Policy::decide_store(bool head, const RequestDirectives& request, const http::Fields& request_fields,
                                   unsigned status, const http::Fields& response, http::Time request_time,
                                   http::Time now) const {
    StoreDecision d;
    const auto view = targeted_view(response);
    const auto& decisive = view ? *view : response;
    d.judged.cc = http::cache_control_of(decisive);
    auto reason = http::storability(head ? "HEAD" : "GET", status, request_fields, request.cc, decisive, d.judged.cc);
    if (reason == http::NotStorable::NoFreshness && route_ttl(status)) reason = http::NotStorable::None;
    const auto base = lifetime(status, decisive, d.judged.cc, now);
    d.lifetime_jitter = jitter(base);
    d.judged.lifetime = base + http::Seconds{d.lifetime_jitter};
    d.judged.age = http::current_age(response, request_time, now, now);
    d.expiry_ms = expiry_ms(d.judged, now);
    if (reason != http::NotStorable::None) d.refused = detail_of(reason);
    else if (head) d.refused = Detail::Head;
    else if (request.conditional) d.refused = Detail::Conditional;
    else if (status == 304) d.refused = Detail::Status;
    else if (vary_names(response) == std::vector<std::string>{"*"}) d.refused = Detail::VaryStar;
    else if (response.count(bhttp::field::set_cookie) && route_.set_cookie == config::SetCookiePolicy::Refuse)
        d.refused = Detail::SetCookie;
    // Stale on arrival is not worth storing, but for a no-cache response with a validator: it is
    // revalidated on every use anyway, and a 304 then serves the stored body (RFC 9111 §5.2.2.4).
    else if (d.judged.lifetime <= d.judged.age &&
             !(d.judged.cc.no_cache && (response.count(bhttp::field::etag) || response.count(bhttp::field::last_modified))))
        d.refused = Detail::StaleOnArrival;
    return d;
}

Entry Policy::entry_for(const StoreDecision& decision, unsigned status, const http::Fields& response, std::string body,
                        const http::Fields& request_fields, http::Time request_time, http::Time now) const {
    Entry entry;
    entry.status = status;
    const bool keep_cookies = route_.set_cookie == config::SetCookiePolicy::Store;
    for (const auto& f : response)
        if ((keep_cookies || f.name() != bhttp::field::set_cookie) && !http::iequals(f.name_string(), "Cache-Status") &&
            !private_field(decision.judged.cc, f.name_string()))
            entry.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    entry.body = std::move(body);
    entry.request_time = request_time.time_since_epoch().count();
    entry.response_time = now.time_since_epoch().count();
    entry.lifetime_jitter = decision.lifetime_jitter;
    entry.vary = vary_names(response);
    if (!entry.vary.empty()) entry.variant = variant_key(entry.vary, request_fields);
    return entry;
}

Entry Policy::refreshed(const Entry& stored, const http::Fields& not_modified, http::Time request_time,
                        http::Time now) const {
    Entry merged = stored;
    auto updates = [](std::string_view name) {
        return !http::iequals(name, "Content-Length") && !http::iequals(name, "Content-Range") &&
               !http::iequals(name, "Content-Encoding") &&
               !http::iequals(name, "Set-Cookie") && !http::iequals(name, "Cache-Status");
    };
    for (const auto& f : not_modified)
        if (updates(f.name_string()))
            std::erase_if(merged.headers, [&](const auto& h) { return http::iequals(h.first, f.name_string()); });
    for (const auto& f : not_modified)
        if (updates(f.name_string())) merged.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    merged.request_time = request_time.time_since_epoch().count();
    merged.response_time = now.time_since_epoch().count();
    http::Fields fields;
    for (const auto& [name, value] : merged.headers) fields.insert(name, value);
    merged.lifetime_jitter = 0;
    const auto judged = judge(merged, fields, now);
    merged.lifetime_jitter = jitter(judged.lifetime);
    // What the 304 names private="…" is not kept either (it may have brought such a field).
    std::erase_if(merged.headers, [&](const auto& h) { return private_field(judged.cc, h.first); });
    return merged;
}

std::int64_t Policy::expiry_ms(const Judged& judged, http::Time now) const {
    using std::chrono::milliseconds;
    const auto end_of_freshness = std::chrono::duration_cast<milliseconds>((now + judged.remaining()).time_since_epoch());
    return (end_of_freshness + retention(judged.cc)).count();
}

}  // namespace cachalot::cache
