#include "server/proxy_handler.hpp"

#include "cachalot/cache/entry.hpp"
#include "cachalot/http/conditional.hpp"
#include "cachalot/http/freshness.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/http/target.hpp"
#include "cachalot/server/router.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace cachalot::server {
namespace {

constexpr std::string_view kPseudonym = "cachalot";
using Clock = std::chrono::system_clock;

http::Time now_seconds() { return std::chrono::floor<std::chrono::seconds>(Clock::now()); }

// The request as the origin gets it: forwarding fields added, framed by its (already
// complete) body. The session has already validated it, set Host to the authority the cache key
// uses and removed the hop-by-hop fields. An HTTP/1.0 request without Host is sent with the
// upstream's own host, as nginx does.
void prepare_for_origin(Request& req, const ClientInfo& client, const http::Authority& authority,
                        const config::Upstream& upstream) {
    req.erase(bhttp::field::expect);  // the body is already here; an interim 100 would only cost a round trip
    http::add_forwarded(req.base(), {client.address, "http", authority.to_string()});
    http::add_via(req.base(), kPseudonym);
    if (authority.host.empty()) req.set(bhttp::field::host, upstream.host + ":" + std::to_string(upstream.port));
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

// The random part of a stored lifetime (cache.ttl_jitter): ± percent of it, in seconds.
std::int64_t jitter(http::Seconds lifetime, unsigned percent) {
    if (percent == 0 || lifetime.count() <= 0) return 0;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const double span = static_cast<double>(lifetime.count()) * percent / 100.0;
    return std::llround(std::uniform_real_distribution<double>(-span, span)(rng));
}

// The unsafe methods whose success invalidates what is stored for the URI (RFC 9111 §4.4).
// Only the known ones: a made-up method such as FOO answered 2xx by a lenient origin must not let
// any client empty the cache.
bool invalidating_method(bhttp::verb m) {
    return m == bhttp::verb::post || m == bhttp::verb::put || m == bhttp::verb::delete_ || m == bhttp::verb::patch;
}

}  // namespace

ProxyHandler::ProxyHandler(const config::Config& cfg, upstream::Pool& pool, cache::TieredCache cache,
                           cache::Coalescer& coalescer, const metrics::Metrics& metrics)
    : cfg_(cfg), pool_(pool), cache_(cache), coalescer_(coalescer), metrics_(metrics) {
    if (!cfg.cache.targeted_field.empty()) targeted_fields_.push_back(cfg.cache.targeted_field);
    targeted_fields_.push_back("CDN-Cache-Control");
    for (const auto& route : cfg.routes) {
        const auto& k = route.cache.key;
        key_rules_.push_back({k.sort_query, k.ignore_query_params, k.headers, k.cookies});
    }
}

Response make_error_response(unsigned status, unsigned version, std::string_view detail) {
    Response res{static_cast<bhttp::status>(status), version};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::cache_control, "no-store");
    // The proxy's own 503 means it is out of room for the moment (client.max_buffered_bytes).
    if (status == 503) res.set(bhttp::field::retry_after, "1");
    std::string body = std::to_string(status) + " " + std::string(bhttp::obsolete_reason(res.result()));
    if (!detail.empty()) body += ": " + std::string(detail);
    res.body() = body + "\n";
    res.prepare_payload();
    return res;
}

net::awaitable<bool> ProxyHandler::forward(Request& request, const ClientInfo& client,
                                           const config::Route& route, Outcome& out) {
    const auto method = request.method();
    const auto version = request.version();
    prepare_for_origin(request, client, client.authority, cfg_.upstreams[route.upstream_index]);
    auto fetched = co_await pool_.fetch(route.upstream_index, request);
    out.upstream_seconds = fetched.seconds;
    if (fetched.over_budget) {
        metrics_.buffer_refusals(true).Increment();
        out.response = make_error_response(503, version, "too many large responses in flight; try again");
        co_return false;
    }
    if (!fetched.response) {
        out.response = fetched.timed_out()
                           ? make_error_response(504, version, "the origin did not answer in time")
                           : make_error_response(502, version, "the origin could not be reached or answered badly");
        co_return false;
    }
    out.response = std::move(*fetched.response);
    out.held = std::move(fetched.held);
    out.response.version(version);
    prepare_for_client(out.response, method);
    co_return true;
}

// A successful unsafe request changes the resource: what is stored for its URI, and for a
// same-origin Location or Content-Location, is dropped (RFC 9111 §4.4).
void ProxyHandler::invalidate(std::string_view request_target, const Response& response,
                              const http::Authority& authority, const Request& request, const config::Route& route) {
    const auto& rules = key_rules_[static_cast<std::size_t>(&route - cfg_.routes.data())];
    auto drop = [&](std::string_view target) {
        cache_.erase(cache::primary_key("GET", "http", authority, target, request.base(), rules));
    };
    drop(request_target);
    for (auto field : {bhttp::field::location, bhttp::field::content_location}) {
        auto target = http::parse_request_target(response[field]);
        if (!target || target->form == http::RequestTarget::Form::Asterisk) continue;
        if (!target->authority || *target->authority == authority) drop(target->origin_form);  // same origin only
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

std::chrono::milliseconds ProxyHandler::retention(const config::RouteCache& rc, const http::CacheControl& cc) const {
    using std::chrono::milliseconds;
    auto window = std::max({cfg_.cache.keep, rc.stale_while_revalidate, rc.stale_if_error, rc.grace});
    if (cc.stale_while_revalidate) window = std::max<milliseconds>(window, *cc.stale_while_revalidate);
    if (cc.stale_if_error) window = std::max<milliseconds>(window, *cc.stale_if_error);
    return window;
}

bool ProxyHandler::store(const std::string& key, cache::Entry& entry, const std::optional<cache::Entry>& primary,
                         std::int64_t expiry_ms, std::chrono::milliseconds retention) {
    expiry_ms += retention.count();
    if (!entry.vary.empty()) {
        // Variants stored together share an epoch: keep the primary's while its Vary names
        // hold, so the other variants stay reachable; a new one otherwise.
        entry.vary_epoch = primary && primary->vary == entry.vary && !primary->vary_epoch.empty()
                               ? primary->vary_epoch
                               : new_epoch();
    }
    const auto bytes = cache::encode_entry(entry);
    if (!cache_.insert(key, bytes, expiry_ms)) return false;
    if (entry.vary.empty()) return true;
    return cache_.insert(variant_storage_key(key, entry.vary_epoch, entry.variant), bytes, expiry_ms);
}

std::optional<http::Fields> ProxyHandler::targeted_view(const http::Fields& fields) const {
    for (const auto& name : targeted_fields_) {
        auto value = http::field_values(fields, name);
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


net::awaitable<void> ProxyHandler::find(const Request& request, Lookup& lookup, bool l2_only) {
    lookup.primary = co_await cache_.lookup(lookup.key, l2_only);
    lookup.stored = lookup.primary;
    const auto& primary = lookup.primary;
    if (!primary || primary->vary.empty()) co_return;
    // The primary entry names the Vary fields; the request's values pick the variant.
    const auto variant = cache::variant_key(primary->vary, request.base());
    if (primary->vary == std::vector<std::string>{"*"}) {
        lookup.stored.reset();
    } else if (variant != primary->variant) {
        lookup.stored = co_await cache_.lookup(variant_storage_key(lookup.key, primary->vary_epoch, variant), l2_only);
        auto& entry = lookup.stored;
        if (entry && (entry->vary != primary->vary || entry->variant != variant)) entry.reset();
    }
    if (!lookup.stored) lookup.fwd = "vary-miss";
}

ProxyHandler::Judged ProxyHandler::judge(const cache::Entry& entry, const config::RouteCache& rules, unsigned version,
                                         http::Time now) const {
    // The response is built first and its fields serve the policy checks too: one header block
    // per hit, not two.
    Judged j{Response{static_cast<bhttp::status>(entry.status), version}, {}, {}, {}};
    for (const auto& [name, value] : entry.headers) j.response.insert(name, value);
    const http::Fields& stored = j.response.base();
    const auto view = targeted_view(stored);
    const auto& policy = view ? *view : stored;
    j.response_cc = http::cache_control_of(policy);
    const http::Time request_time{http::Seconds{entry.request_time}};
    const http::Time response_time{http::Seconds{entry.response_time}};
    j.lifetime = lifetime_for(rules, entry.status, policy, j.response_cc, response_time) +
                 http::Seconds{entry.lifetime_jitter};
    j.age = http::current_age(stored, request_time, response_time, now);
    return j;
}

Response ProxyHandler::deliver(Judged& judged, std::string body, const http::Fields& request, bhttp::verb method,
                               unsigned version) const {
    Response res;
    if (http::not_modified(request, judged.response.base(), now_seconds())) {
        res = Response{bhttp::status::not_modified, version};
        for (const auto& f : judged.response.base())
            if (http::sent_with_304(f.name_string()) || http::iequals(f.name_string(), "Via"))
                res.insert(f.name_string(), f.value());
    } else {
        res = std::move(judged.response);
        res.version(version);
        res.body() = std::move(body);
        res.prepare_payload();
        if (method == bhttp::verb::head) res.body().clear();  // Content-Length stays
    }
    res.set(bhttp::field::age, std::to_string(std::max<std::int64_t>(0, judged.age.count())));
    return res;
}

Response ProxyHandler::collapsed(const cache::Entry& entry, const Request& request, const Lookup& lookup) const {
    const auto& route = cfg_.routes[lookup.route];
    auto judged = judge(entry, route.cache, request.version(), now_seconds());
    auto res = deliver(judged, entry.body, request.base(), request.method(), request.version());
    add_cache_status(res, "cachalot; fwd=" + lookup.fwd + "; fwd-status=" + std::to_string(entry.status) +
                              "; collapsed; ttl=" + std::to_string((judged.lifetime - judged.age).count()));
    const auto& series = metrics_.route(lookup.route);
    series.coalesced->Increment();
    series.cache_result("miss");
    return res;
}

http::StaleReason ProxyHandler::stale_on_error(const Lookup& lookup, const Judged& judged) const {
    const auto& rules = cfg_.routes[lookup.route].cache;
    return http::stale_on_error(lookup.request_cc, judged.response_cc, judged.staleness(),
                                std::chrono::duration_cast<http::Seconds>(rules.stale_if_error),
                                std::chrono::duration_cast<http::Seconds>(rules.grace));
}

net::awaitable<Outcome> ProxyHandler::serve(Request& request, const ClientInfo& client) {
    Outcome out;
    out.route = match_route(cfg_.routes, client.authority.host, http::path_of(request.target()));
    if (!out.route) {
        out.response = make_error_response(404, request.version(), "no route for this request");
        co_return out;
    }
    const auto& route = cfg_.routes[*out.route];
    // Before the key is built, so that the key and Vary see what the origin will see.
    for (const auto& name : route.request_headers.strip) request.erase(name);
    for (const auto& [name, value] : route.request_headers.set) request.set(name, value);
    const auto& series = metrics_.route(*out.route);
    const auto method = request.method();
    const auto version = request.version();

    // A GET or HEAD with a body is forwarded with it (search APIs put queries there), but its
    // response depends on bytes the key does not hold: it is never looked up, stored or shared.
    const bool with_body = !request.body().empty();
    if (!cache_.enabled() || !route.cache.enabled || (method != bhttp::verb::get && method != bhttp::verb::head) ||
        with_body) {
        const std::string target(request.target());
        const bool answered = co_await forward(request, client, route, out);
        if (cache_.enabled() && answered && invalidating_method(method) && out.response.result_int() < 400)
            invalidate(target, out.response, client.authority, request, route);
        add_cache_status(out.response, with_body && route.cache.enabled && cache_.enabled()
                                           ? "cachalot; fwd=bypass; detail=request-body"
                                           : "cachalot; fwd=bypass");
        series.cache_result("bypass");
        co_return out;
    }

    // ---- lookup -------------------------------------------------------------------------------
    Lookup lookup;
    lookup.route = *out.route;
    lookup.request_cc = http::cache_control_of(request.base());
    lookup.pragma_no_cache = request.count(bhttp::field::cache_control) == 0 &&
                             request[bhttp::field::pragma].find("no-cache") != std::string_view::npos;
    lookup.conditional = http::has_precondition_or_range(request.base());
    const auto& rules = route.cache;
    lookup.key = cache::primary_key(request.method_string(), "http", client.authority, request.target(), request.base(),
                                    key_rules_[*out.route]);
    if (cfg_.cache.debug_cache_status) out.cache_key = lookup.key;
    co_await find(request, lookup);

    if (lookup.stored) {
        auto judged = judge(*lookup.stored, rules, version, now_seconds());
        const auto default_swr = std::chrono::duration_cast<http::Seconds>(rules.stale_while_revalidate);
        const auto use = http::usability(lookup.request_cc, lookup.pragma_no_cache, judged.response_cc,
                                         judged.lifetime, judged.age, default_swr);
        if (use != http::Usability::MustRevalidate) {
            const auto ttl = std::to_string((judged.lifetime - judged.age).count());
            std::string status_entry = "cachalot; hit; ttl=" + ttl;
            if (use == http::Usability::StaleWhileRevalidate) {
                status_entry += "; detail=stale-while-revalidate";
                series.stale_served("stale-while-revalidate");
                revalidate_in_background(request, client, lookup);
            }
            out.response = deliver(judged, std::move(lookup.stored->body), request.base(), method, version);
            add_cache_status(out.response, status_entry);
            series.cache_result("hit");
            co_return out;
        }
        const auto& cc = lookup.request_cc;
        lookup.fwd = cc.no_cache || lookup.pragma_no_cache || cc.max_age || cc.min_fresh ? "request" : "stale";
    }

    if (lookup.request_cc.only_if_cached) {
        out.response = make_error_response(504, version, "only-if-cached and nothing usable is stored");
        add_cache_status(out.response, "cachalot; fwd=" + lookup.fwd + "; detail=only-if-cached");
        series.cache_result("miss");
        series.store_outcome("only-if-cached");
        co_return out;
    }

    // ---- coalesce -----------------------------------------------------------------------------
    // Plain GETs share one fetch per key. Conditional and range requests, and HEAD, are
    // forwarded as they are: their responses are not stored, so there is nothing to share.
    std::optional<cache::Coalescer::Permit> permit;
    if (method == bhttp::verb::get && !lookup.conditional) {
        auto joined = co_await coalescer_.join(lookup.key, cfg_.cache.coalesce_timeout);
        if (joined.permit) {
            permit.emplace(std::move(*joined.permit));
        } else if (joined.shared && joined.shared->entry) {
            const auto& entry = *joined.shared->entry;
            if (entry.vary.empty() || cache::variant_key(entry.vary, request.base()) == entry.variant) {
                out.response = collapsed(entry, request, lookup);
                co_return out;
            }
        } else if (joined.shared && joined.shared->origin_failed && lookup.stored) {
            // The origin just failed for the request this one waited on: a stored response that
            // stale-if-error or grace allow answers now, without asking the failing origin again.
            auto judged = judge(*lookup.stored, rules, version, now_seconds());
            const auto reason = stale_on_error(lookup, judged);
            if (reason != http::StaleReason::None) {
                out.response = deliver(judged, std::move(lookup.stored->body), request.base(), method, version);
                add_cache_status(out.response, "cachalot; fwd=" + lookup.fwd + "; collapsed; detail=" +
                                                   http::to_string(reason));
                series.stale_served(http::to_string(reason));
                series.cache_result("miss");
                co_return out;
            }
        }
        // Otherwise (not shareable, another variant, waited too long): on its own.
    }

    // ---- cross-node coalescing -----------------------------------------------------------------
    // This node's fetcher also takes the key's Redis lock; if another node holds it, its entry
    // is awaited in L2 instead of fetching again. Redis failing: the lock is skipped.
    std::string lock_name, lock_token;
    if (permit && cache_.l2() && cfg_.cache.l2.lock) {
        lock_name = "lock:" + lookup.key;
        lock_token = new_epoch();
        const auto held = co_await cache_.l2()->try_lock(lock_name, lock_token, cfg_.cache.l2.lock_ttl);
        if (held == false && co_await wait_for_other_node(request, lookup)) {
            auto entry = std::make_shared<const cache::Entry>(std::move(*lookup.stored));
            permit->publish({entry, false});
            out.response = collapsed(*entry, request, lookup);
            co_return out;
        }
        if (held != true) lock_name.clear();
    }

    // ---- fetch --------------------------------------------------------------------------------
    Fetched fetched;
    auto answer = co_await fetch(request, client, lookup, fetched);
    if (permit) permit->publish({fetched.stored, fetched.origin_failed});
    // Released after the entry's L2 write (the write queue keeps order).
    if (!lock_name.empty()) cache_.l2()->unlock_later(lock_name, lock_token);
    answer.cache_key = std::move(out.cache_key);
    co_return answer;
}

net::awaitable<bool> ProxyHandler::wait_for_other_node(const Request& request, Lookup& lookup) {
    const auto& l2cfg = cfg_.cache.l2;
    const auto& rules = cfg_.routes[lookup.route].cache;
    const auto deadline = std::chrono::steady_clock::now() + l2cfg.lock_ttl;
    const auto lock_name = "lock:" + lookup.key;
    net::steady_timer pause(co_await net::this_coro::executor);
    while (std::chrono::steady_clock::now() < deadline) {
        pause.expires_after(l2cfg.lock_poll);
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        Lookup probe = lookup;
        co_await find(request, probe, true);  // L1 may hold the stale copy this node started from
        if (probe.stored) {
            auto judged = judge(*probe.stored, rules, request.version(), now_seconds());
            if (judged.lifetime > judged.age) {
                lookup.stored = std::move(probe.stored);
                lookup.primary = std::move(probe.primary);
                co_return true;
            }
        } else if (probe.primary) {
            co_return false;  // another variant was fetched: this one is not coming
        }
        // The holder released the lock (or lost it) without storing: stop waiting.
        if (co_await cache_.l2()->is_locked(lock_name) != true) co_return false;
    }
    co_return false;
}

void ProxyHandler::revalidate_in_background(const Request& request, const ClientInfo& client, const Lookup& lookup) {
    auto permit = coalescer_.try_acquire(lookup.key);
    if (!permit) return;  // a fetch of this key is in flight already
    metrics_.route(lookup.route).background_revalidations->Increment();
    // The background request is the client's GET without its conditions: it refreshes the
    // stored response, whatever this client already has.
    auto copy = std::make_shared<Request>(request);
    copy->method(bhttp::verb::get);
    for (auto f : {bhttp::field::if_none_match, bhttp::field::if_modified_since, bhttp::field::if_match,
                   bhttp::field::if_unmodified_since, bhttp::field::if_range, bhttp::field::range})
        copy->erase(f);
    copy->erase(bhttp::field::cache_control);
    copy->erase(bhttp::field::pragma);
    auto state = std::make_shared<Lookup>(lookup);
    state->request_cc = {};
    state->pragma_no_cache = false;
    state->conditional = false;
    state->fwd = "stale";
    auto run = [](ProxyHandler* self, std::shared_ptr<Request> req, ClientInfo client, std::shared_ptr<Lookup> state,
                  cache::Coalescer::Permit permit) -> net::awaitable<void> {
        Fetched fetched;
        co_await self->fetch(*req, client, *state, fetched);
        permit.publish({fetched.stored, fetched.origin_failed});
    };
    net::co_spawn(pool_.executor(), run(this, std::move(copy), client, std::move(state), std::move(*permit)),
                  net::detached);
}

net::awaitable<Outcome> ProxyHandler::fetch(Request& request, const ClientInfo& client, Lookup& lookup,
                                            Fetched& fetched) {
    Outcome out;
    out.route = lookup.route;
    const auto& route = cfg_.routes[lookup.route];
    const auto& rules = route.cache;
    const auto& series = metrics_.route(lookup.route);
    const auto method = request.method();
    const auto version = request.version();
    const auto& key = lookup.key;
    const auto& fwd = lookup.fwd;
    http::Fields request_fields = request.base();  // forwarding rewrites the request

    // A stored response that may not be used as it is, but has validators, is revalidated: the
    // origin answers 304 if it is still current (RFC 9111 §4.3.1).
    bool revalidating = false;
    if (lookup.stored && !lookup.conditional && method == bhttp::verb::get) {
        std::string etag, last_modified;
        for (const auto& [name, value] : lookup.stored->headers) {
            if (http::iequals(name, "ETag")) etag = value;
            if (http::iequals(name, "Last-Modified")) last_modified = value;
        }
        if (!etag.empty()) request.set(bhttp::field::if_none_match, etag);
        else if (!last_modified.empty()) request.set(bhttp::field::if_modified_since, last_modified);
        revalidating = !etag.empty() || !last_modified.empty();
    }

    const auto sent = std::chrono::steady_clock::now();
    series.origin_fetches->Increment();
    const bool answered = co_await forward(request, client, route, out);
    const auto now = now_seconds();
    // The response delay in whole seconds, measured, not as the difference of two rounded
    // clock readings (which would make a 300 ms fetch count as a second of age).
    const auto request_time = now - std::chrono::floor<http::Seconds>(std::chrono::steady_clock::now() - sent);
    const unsigned status = out.response.result_int();
    fetched.origin_failed = !answered || status == 500 || status == 502 || status == 503 || status == 504;

    // ---- the origin failed: stale-if-error, grace ---------------------------------------------
    if (fetched.origin_failed && lookup.stored) {
        auto judged = judge(*lookup.stored, rules, version, now);
        const auto reason = stale_on_error(lookup, judged);
        if (reason != http::StaleReason::None) {
            const auto fwd_status = answered ? "; fwd-status=" + std::to_string(status) : std::string();
            out.response = deliver(judged, lookup.stored->body, request_fields, method, version);
            add_cache_status(out.response, "cachalot; fwd=" + fwd + fwd_status + "; detail=" + http::to_string(reason));
            series.stale_served(http::to_string(reason));
            series.cache_result("miss");
            co_return out;
        }
    }
    if (!answered) {
        add_cache_status(out.response, "cachalot; fwd=" + fwd + "; detail=origin-unavailable");
        series.cache_result("miss");
        series.store_outcome("origin-unavailable");
        co_return out;
    }

    if (revalidating && status == 304) {
        // Still current: the 304's fields replace the stored ones (but Content-Length and what
        // the stored body depends on), the clock restarts, the stored body is served (§3.2, §4.3.4).
        auto merged = *lookup.stored;
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
        merged.lifetime_jitter = 0;
        auto judged = judge(merged, rules, version, now);
        merged.lifetime_jitter = jitter(judged.lifetime, cfg_.cache.ttl_jitter);
        judged.lifetime += http::Seconds{merged.lifetime_jitter};
        std::string status_entry = "cachalot; fwd=" + fwd + "; fwd-status=304";
        if (judged.lifetime > judged.age && !judged.response_cc.no_store) {
            const auto remaining = judged.lifetime - judged.age;
            const auto expiry_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>((now + remaining).time_since_epoch()).count();
            if (store(key, merged, lookup.primary, expiry_ms, retention(rules, judged.response_cc))) {
                status_entry += "; stored; ttl=" + std::to_string(remaining.count());
                series.store_outcome("stored");
                fetched.stored = std::make_shared<const cache::Entry>(merged);
            }
        }
        series.cache_result("revalidated");
        out.response = deliver(judged, merged.body, request_fields, method, version);
        add_cache_status(out.response, status_entry);
        co_return out;
    }

    // ---- store --------------------------------------------------------------------------------
    auto& res = out.response;
    std::string detail;
    const auto view = targeted_view(res.base());
    const auto& policy = view ? *view : static_cast<const http::Fields&>(res.base());
    const auto response_cc = http::cache_control_of(policy);
    auto reason = http::storability(method == bhttp::verb::head ? "HEAD" : "GET", status, request_fields,
                                    lookup.request_cc, policy, response_cc);
    if (reason == http::NotStorable::NoFreshness && route_ttl(rules, status)) reason = http::NotStorable::None;
    auto lifetime = lifetime_for(rules, status, policy, response_cc, now);
    const auto lifetime_jitter = jitter(lifetime, cfg_.cache.ttl_jitter);
    lifetime += http::Seconds{lifetime_jitter};
    const auto age = http::current_age(res.base(), request_time, now, now);
    const bool sets_cookie = res.count(bhttp::field::set_cookie) > 0;
    if (reason != http::NotStorable::None) {
        detail = http::to_string(reason);
    } else if (method == bhttp::verb::head) {
        detail = "head";  // no body to store; a later GET fills the cache
    } else if (lookup.conditional) {
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
        entry.lifetime_jitter = lifetime_jitter;
        entry.vary = cache::vary_names(res.base());
        if (!entry.vary.empty()) entry.variant = cache::variant_key(entry.vary, request_fields);
        const auto remaining = lifetime - age;
        const auto expiry_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>((now + remaining).time_since_epoch()).count();
        if (store(key, entry, lookup.primary, expiry_ms, retention(rules, response_cc))) {
            add_cache_status(res, "cachalot; fwd=" + fwd + "; fwd-status=" + std::to_string(status) +
                                      "; stored; ttl=" + std::to_string(remaining.count()));
            series.cache_result("miss");
            series.store_outcome("stored");
            fetched.stored = std::make_shared<const cache::Entry>(std::move(entry));
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
