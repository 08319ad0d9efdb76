#include "server/proxy_handler.hpp"

#include "cachalot/cache/entry.hpp"
#include "cachalot/http/conditional.hpp"
#include "cachalot/http/freshness.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/server/router.hpp"

#include <algorithm>

namespace cachalot::server {
namespace {

constexpr std::string_view kPseudonym = "cachalot";
using Clock = std::chrono::system_clock;

http::Time now_seconds() { return std::chrono::floor<std::chrono::seconds>(Clock::now()); }

// The request as the origin gets it: hop-by-hop fields removed, forwarding fields added,
// framed by its (already complete) body.
void prepare_for_origin(Request& req, const ClientInfo& client, const std::string& host) {
    std::string host_field(req[bhttp::field::host]);
    http::strip_hop_by_hop(req.base());
    req.erase(bhttp::field::expect);  // the body is already here; an interim 100 would only cost a round trip
    http::add_forwarded(req.base(), {client.address, "http", host_field});
    http::add_via(req.base(), kPseudonym);
    if (host_field.empty() && !host.empty()) req.set(bhttp::field::host, host);
    req.version(11);
    req.keep_alive(true);
    req.prepare_payload();
}

// The origin's response as the client gets it.
void prepare_for_client(Response& res, bhttp::verb method) {
    std::string length(res[bhttp::field::content_length]);
    http::strip_hop_by_hop(res.base());
    http::add_via(res.base(), kPseudonym);
    if (method == bhttp::verb::head) {
        // No body was read: keep the length the origin announced for the GET.
        if (!length.empty()) res.set(bhttp::field::content_length, length);
    } else {
        res.prepare_payload();
    }
}

// Appends this cache's entry to Cache-Status (RFC 9211), after any upstream cache's.
void add_cache_status(Response& res, const std::string& entry) {
    std::string value(res["Cache-Status"]);
    if (!value.empty()) value += ", ";
    value += entry;
    res.set("Cache-Status", value);
}

// Where a variant is stored: the primary key, the epoch and the variant key.
std::string variant_storage_key(const std::string& key, const std::string& epoch, const std::string& variant) {
    return key + "\x1f" + epoch + "\x1f" + variant;
}

std::string new_epoch() {
    static std::atomic<std::uint64_t> counter{0};
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    return std::to_string(t) + "." + std::to_string(++counter);
}

// A stored entry as the client gets it (HEAD: the GET's length, no body).
Response response_from(cache::Entry& entry, unsigned version, bhttp::verb method) {
    Response res{static_cast<bhttp::status>(entry.status), version};
    for (auto& [name, value] : entry.headers) res.insert(name, value);
    res.body() = std::move(entry.body);
    res.prepare_payload();
    if (method == bhttp::verb::head) res.body().clear();  // Content-Length stays
    return res;
}

bool safe_method(bhttp::verb m) {
    return m == bhttp::verb::get || m == bhttp::verb::head || m == bhttp::verb::options || m == bhttp::verb::trace;
}

std::string request_host(const Request& request) {
    auto host = std::string(request[bhttp::field::host]);
    auto target = request.target();
    if (auto p = target.find("://"); p != std::string_view::npos && target.front() != '/') {
        auto authority = target.substr(p + 3);
        host = std::string(authority.substr(0, authority.find_first_of("/?")));
    }
    return host;
}

}  // namespace

ProxyHandler::ProxyHandler(const config::Config& cfg, upstream::Pool& pool, store::ShmStore* l1,
                           const metrics::Metrics& metrics)
    : cfg_(cfg), pool_(pool), l1_(l1), metrics_(metrics) {
    for (const auto& route : cfg.routes) {
        const auto& k = route.cache.key;
        key_rules_.push_back({k.sort_query, k.ignore_query_params, k.headers, k.cookies});
    }
}

Response make_error_response(unsigned status, unsigned version, std::string_view detail) {
    Response res{static_cast<bhttp::status>(status), version};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::cache_control, "no-store");
    std::string body = std::to_string(status) + " " + std::string(bhttp::obsolete_reason(res.result()));
    if (!detail.empty()) body += ": " + std::string(detail);
    res.body() = body + "\n";
    res.prepare_payload();
    return res;
}

net::awaitable<bool> ProxyHandler::forward(Request& request, const ClientInfo& client, const std::string& host,
                                           const config::Route& route, Outcome& out) {
    const auto method = request.method();
    const auto version = request.version();
    prepare_for_origin(request, client, host);
    auto fetched = co_await pool_.fetch(route.upstream_index, request);
    out.upstream_seconds = fetched.seconds;
    if (!fetched.response) {
        out.response = fetched.timed_out()
                           ? make_error_response(504, version, "the origin did not answer in time")
                           : make_error_response(502, version, "the origin could not be reached or answered badly");
        co_return false;
    }
    out.response = std::move(*fetched.response);
    out.response.version(version);
    prepare_for_client(out.response, method);
    co_return true;
}

// A successful unsafe request changes the resource: what is stored for its URI, and for a
// same-origin Location or Content-Location, is dropped (RFC 9111 §4.4).
void ProxyHandler::invalidate(std::string_view request_target, const Response& response, const std::string& host,
                              const Request& request, const config::Route& route) {
    const auto& rules = key_rules_[static_cast<std::size_t>(&route - cfg_.routes.data())];
    auto drop = [&](std::string_view target) {
        auto key = cache::primary_key("GET", "http", host, target, request.base(), rules);
        l1_->erase(store::hash_key(key), key);
    };
    drop(request_target);
    for (auto field : {bhttp::field::location, bhttp::field::content_location}) {
        std::string_view value = response[field];
        if (value.empty()) continue;
        if (value.front() == '/') {
            drop(value);
        } else if (normalized_host(value, "") == normalized_host("", host)) {
            drop(value);  // absolute and same origin
        }
    }
}

std::optional<http::Seconds> ProxyHandler::route_ttl(const config::RouteCache& rc, unsigned status) {
    for (const auto& [s, ttl] : rc.status_ttl)
        if (s == status) return std::chrono::duration_cast<http::Seconds>(ttl);
    if (rc.default_ttl.count() > 0 && status >= 200 && status < 400)
        return std::chrono::duration_cast<http::Seconds>(rc.default_ttl);
    return std::nullopt;
}

http::Seconds ProxyHandler::lifetime_for(const config::RouteCache& rc, unsigned status, const http::Fields& fields,
                                         const http::CacheControl& cc, http::Time response_time) const {
    const auto heuristic = std::chrono::duration_cast<http::Seconds>(cfg_.cache.heuristic_max_ttl);
    const auto origin = http::freshness_lifetime(status, fields, cc, response_time, heuristic);
    const bool explicit_freshness = origin.source == http::FreshnessSource::SMaxAge ||
                                    origin.source == http::FreshnessSource::MaxAge ||
                                    origin.source == http::FreshnessSource::Expires;
    auto lifetime = origin.lifetime;
    if (auto ttl = route_ttl(rc, status); ttl && (rc.override_origin || !explicit_freshness)) lifetime = *ttl;
    if (rc.max_ttl.count() > 0) lifetime = std::min(lifetime, std::chrono::duration_cast<http::Seconds>(rc.max_ttl));
    return lifetime;
}

bool ProxyHandler::store(const std::string& key, store::Hash hash, cache::Entry& entry,
                         const std::optional<cache::Entry>& primary, std::int64_t expiry_ms) {
    // Kept a while after it goes stale: to be revalidated (when it has validators), or served to
    // requests that accept staleness (max-stale).
    expiry_ms += cfg_.cache.keep.count();
    if (!entry.vary.empty()) {
        // Variants stored together share an epoch: keep the primary's while its Vary names
        // hold, so the other variants stay reachable; a new one otherwise.
        entry.vary_epoch = primary && primary->vary == entry.vary && !primary->vary_epoch.empty()
                               ? primary->vary_epoch
                               : new_epoch();
    }
    const auto bytes = cache::encode_entry(entry);
    if (!l1_->put(hash, key, bytes, expiry_ms)) return false;
    if (entry.vary.empty()) return true;
    const auto vkey = variant_storage_key(key, entry.vary_epoch, entry.variant);
    return l1_->put(store::hash_key(vkey), vkey, bytes, expiry_ms);
}

std::optional<cache::Entry> ProxyHandler::lookup(const std::string& key, store::Hash hash) {
    auto bytes = l1_->find(hash, key);
    if (!bytes) return std::nullopt;
    auto entry = cache::decode_entry(*bytes);
    if (!entry) l1_->erase(hash, key);  // not ours to trust
    return entry;
}

std::optional<http::Fields> ProxyHandler::targeted_view(const http::Fields& fields) const {
    for (const std::string& name : {cfg_.cache.targeted_field, std::string("CDN-Cache-Control")}) {
        if (name.empty()) continue;
        std::string value;
        for (const auto& f : fields) {
            if (!http::iequals(f.name_string(), name)) continue;
            if (!value.empty()) value += ", ";
            value += f.value();
        }
        if (value.empty()) continue;
        http::Fields view = fields;
        view.erase(bhttp::field::cache_control);
        view.erase(bhttp::field::expires);
        view.set(bhttp::field::cache_control, value);
        return view;
    }
    return std::nullopt;
}

net::awaitable<Outcome> ProxyHandler::handle(Request& request, const ClientInfo& client) {
    auto out = co_await serve(request, client);
    if (!out.cache_key.empty()) {
        // Appended to this cache's own entry, the last one of the list.
        std::string value(out.response["Cache-Status"]);
        std::string escaped;
        for (char c : out.cache_key) {
            if (c == '"' || c == '\\') escaped += '\\';
            escaped += (c == '\n' || c == '\x1f') ? ' ' : c;
        }
        out.response.set("Cache-Status", value + "; key=\"" + escaped + "\"");
    }
    if (cfg_.cache.strip_targeted_fields) {
        out.response.erase("CDN-Cache-Control");
        if (!cfg_.cache.targeted_field.empty()) out.response.erase(cfg_.cache.targeted_field);
    }
    co_return out;
}

net::awaitable<Outcome> ProxyHandler::serve(Request& request, const ClientInfo& client) {
    Outcome out;
    const auto host = normalized_host(request.target(), request[bhttp::field::host]);
    out.route = match_route(cfg_.routes, host, target_path(request.target()));
    if (!out.route) {
        out.response = make_error_response(404, request.version(), "no route for this request");
        co_return out;
    }
    const auto& route = cfg_.routes[*out.route];
    const auto& series = metrics_.route(*out.route);
    const auto method = request.method();
    const auto version = request.version();
    const auto host_field = request_host(request);

    if (!l1_ || !route.cache.enabled || (method != bhttp::verb::get && method != bhttp::verb::head)) {
        const std::string target(request.target());
        const bool answered = co_await forward(request, client, host, route, out);
        if (l1_ && answered && !safe_method(method) && out.response.result_int() < 400)
            invalidate(target, out.response, host_field, request, route);
        add_cache_status(out.response, "cachalot; fwd=bypass");
        series.cache_result("bypass");
        co_return out;
    }

    // ---- lookup -----------------------------------------------------------------------------
    const auto request_cc = http::cache_control_of(request.base());
    const bool pragma_no_cache = request.count(bhttp::field::cache_control) == 0 &&
                                 request[bhttp::field::pragma].find("no-cache") != std::string_view::npos;
    const auto& rules = route.cache;
    const auto& key_rules = key_rules_[*out.route];
    const auto key =
        cache::primary_key(request.method_string(), "http", host_field, request.target(), request.base(), key_rules);
    const auto hash = store::hash_key(key);
    if (cfg_.cache.debug_cache_status) out.cache_key = key;
    auto now = now_seconds();

    std::string fwd = "uri-miss";
    std::optional<cache::Entry> primary = lookup(key, hash);
    std::optional<cache::Entry> entry = primary;
    if (primary && !primary->vary.empty()) {
        // The primary entry names the Vary fields; the request's values pick the variant.
        const auto variant = cache::variant_key(primary->vary, request.base());
        if (primary->vary == std::vector<std::string>{"*"}) {
            entry.reset();
        } else if (variant != primary->variant) {
            const auto vkey = variant_storage_key(key, primary->vary_epoch, variant);
            entry = lookup(vkey, store::hash_key(vkey));
            if (entry && (entry->vary != primary->vary || entry->variant != variant)) entry.reset();
        }
        if (!entry) fwd = "vary-miss";
    }
    if (entry) {
        // The response is built first and its fields serve the policy checks too: one header
        // block per hit, not two.
        Response candidate{static_cast<bhttp::status>(entry->status), version};
        for (auto& [name, value] : entry->headers) candidate.insert(name, value);
        const http::Fields& stored = candidate.base();
        const auto view = targeted_view(stored);
        const auto& policy = view ? *view : stored;
        const auto response_cc = http::cache_control_of(policy);
        const http::Time request_time{http::Seconds{entry->request_time}};
        const http::Time response_time{http::Seconds{entry->response_time}};
        const auto lifetime = lifetime_for(rules, entry->status, policy, response_cc, response_time);
        const auto age = http::current_age(stored, request_time, response_time, now);
        const auto use = http::usability(request_cc, pragma_no_cache, response_cc, lifetime, age);
        if (use != http::Usability::MustRevalidate) {
            const auto ttl = (lifetime - age).count();
            if (http::not_modified(request.base(), stored, now)) {
                out.response = Response{bhttp::status::not_modified, version};
                for (auto& [name, value] : entry->headers)
                    if (http::sent_with_304(name) || http::iequals(name, "Via")) out.response.insert(name, value);
            } else {
                candidate.body() = std::move(entry->body);
                candidate.prepare_payload();
                if (method == bhttp::verb::head) candidate.body().clear();  // Content-Length stays
                out.response = std::move(candidate);
            }
            out.response.set(bhttp::field::age, std::to_string(age.count()));
            add_cache_status(out.response, "cachalot; hit; ttl=" + std::to_string(ttl));
            series.cache_result("hit");
            co_return out;
        }
        const bool forced = request_cc.no_cache || pragma_no_cache || request_cc.max_age || request_cc.min_fresh;
        fwd = forced ? "request" : "stale";
    }

    if (request_cc.only_if_cached) {
        out.response = make_error_response(504, version, "only-if-cached and nothing usable is stored");
        add_cache_status(out.response, "cachalot; fwd=" + fwd + "; detail=only-if-cached");
        series.cache_result("miss");
        series.store_outcome("only-if-cached");
        co_return out;
    }

    // ---- fetch --------------------------------------------------------------------------------
    const bool conditional = http::has_precondition_or_range(request.base());
    http::Fields request_fields = request.base();  // forwarding rewrites the request

    // A stored response that may not be used as it is, but has validators, is revalidated: the
    // origin answers 304 if it is still current (RFC 9111 §4.3.1).
    std::optional<cache::Entry> revalidating;
    if (entry && !conditional && method == bhttp::verb::get) {
        std::string etag, last_modified;
        for (auto& [name, value] : entry->headers) {
            if (http::iequals(name, "ETag")) etag = value;
            if (http::iequals(name, "Last-Modified")) last_modified = value;
        }
        if (!etag.empty()) request.set(bhttp::field::if_none_match, etag);
        else if (!last_modified.empty()) request.set(bhttp::field::if_modified_since, last_modified);
        if (!etag.empty() || !last_modified.empty()) revalidating = std::move(entry);
    }

    const auto request_time = now_seconds();
    const bool answered = co_await forward(request, client, host, route, out);
    now = now_seconds();
    if (!answered) {
        add_cache_status(out.response, "cachalot; fwd=" + fwd + "; detail=origin-unavailable");
        series.cache_result("miss");
        series.store_outcome("origin-unavailable");
        co_return out;
    }

    if (revalidating && out.response.result_int() == 304) {
        // Still current: the 304's fields replace the stored ones (but Content-Length and what
        // the stored body depends on), the clock restarts, the stored body is served (§3.2, §4.3.4).
        auto& merged = *revalidating;
        auto updates = [](std::string_view name) {
            return !http::iequals(name, "Content-Length") && !http::iequals(name, "Content-Encoding") &&
                   !http::iequals(name, "Set-Cookie") && !http::iequals(name, "Cache-Status");
        };
        for (const auto& f : out.response.base())
            if (updates(f.name_string()))
                std::erase_if(merged.headers, [&](const auto& h) { return http::iequals(h.first, f.name_string()); });
        for (const auto& f : out.response.base())
            if (updates(f.name_string())) merged.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        merged.request_time = request_time.time_since_epoch().count();
        merged.response_time = now.time_since_epoch().count();
        http::Fields fields;
        for (auto& [name, value] : merged.headers) fields.insert(name, value);
        const auto merged_view = targeted_view(fields);
        const auto& merged_policy = merged_view ? *merged_view : fields;
        const auto merged_cc = http::cache_control_of(merged_policy);
        const auto lifetime = lifetime_for(rules, merged.status, merged_policy, merged_cc, now);
        const auto merged_age = http::current_age(fields, request_time, now, now);
        std::string status_entry = "cachalot; fwd=" + fwd + "; fwd-status=304";
        if (lifetime > merged_age && !merged_cc.no_store) {
            const auto expiry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       (now + (lifetime - merged_age)).time_since_epoch()).count();
            auto copy = merged;
            if (store(key, hash, copy, primary, expiry_ms)) {
                status_entry += "; stored; ttl=" + std::to_string((lifetime - merged_age).count());
                series.store_outcome("stored");
            }
        }
        series.cache_result("revalidated");
        out.response = response_from(merged, version, method);
        out.response.set(bhttp::field::age, std::to_string(merged_age.count()));
        add_cache_status(out.response, status_entry);
        co_return out;
    }

    // ---- store --------------------------------------------------------------------------------
    auto& res = out.response;
    const unsigned status = res.result_int();
    std::string detail;
    const auto view = targeted_view(res.base());
    const auto& policy = view ? *view : static_cast<const http::Fields&>(res.base());
    const auto response_cc = http::cache_control_of(policy);
    auto reason = http::storability(method == bhttp::verb::head ? "HEAD" : "GET", status, request_fields, request_cc,
                                    policy, response_cc);
    if (reason == http::NotStorable::NoFreshness && route_ttl(rules, status)) reason = http::NotStorable::None;
    const auto lifetime = lifetime_for(rules, status, policy, response_cc, now);
    const auto age = http::current_age(res.base(), request_time, now, now);
    const bool sets_cookie = res.count(bhttp::field::set_cookie) > 0;
    if (reason != http::NotStorable::None) {
        detail = http::to_string(reason);
    } else if (method == bhttp::verb::head) {
        detail = "head";  // no body to store; a later GET fills the cache
    } else if (conditional) {
        detail = "conditional";
    } else if (status == 304) {
        detail = "status";
    } else if (cache::vary_names(res.base()) == std::vector<std::string>{"*"}) {
        detail = "vary-star";  // can never match a later request (RFC 9111 §4.1)
    } else if (sets_cookie && rules.set_cookie == config::SetCookiePolicy::Refuse) {
        detail = "set-cookie";
    } else if (lifetime <= age) {
        detail = "stale-on-arrival";
    } else {
        cache::Entry entry;
        entry.status = status;
        const bool keep_cookies = rules.set_cookie == config::SetCookiePolicy::Store;
        for (const auto& f : res.base())
            if ((keep_cookies || !http::iequals(f.name_string(), "Set-Cookie")) &&
                !http::iequals(f.name_string(), "Cache-Status"))
                entry.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        entry.body = res.body();
        entry.request_time = request_time.time_since_epoch().count();
        entry.response_time = now.time_since_epoch().count();
        entry.vary = cache::vary_names(res.base());
        if (!entry.vary.empty()) entry.variant = cache::variant_key(entry.vary, request_fields);
        const auto remaining = lifetime - age;
        const auto expiry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   (now + remaining).time_since_epoch()).count();
        const bool stored = store(key, hash, entry, primary, expiry_ms);
        if (stored) {
            add_cache_status(res, "cachalot; fwd=" + fwd + "; fwd-status=" + std::to_string(status) +
                                      "; stored; ttl=" + std::to_string(remaining.count()));
            series.cache_result("miss");
            series.store_outcome("stored");
            co_return out;
        }
        detail = "too-large";
    }
    add_cache_status(res, "cachalot; fwd=" + fwd + "; fwd-status=" + std::to_string(status) + "; detail=" + detail);
    series.cache_result("miss");
    series.store_outcome(detail);
    co_return out;
}

}  // namespace cachalot::server
