// The request pipeline, step by step in the order a request meets them (pipeline.hpp maps
// them): receive → bypass | lookup → deliver | coalesce → fetch → store → respond.

#include "server/pipeline.hpp"

#include "cachalot/cache/key.hpp"
#include "cachalot/http/conditional.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/http/range.hpp"
#include "cachalot/http/target.hpp"
#include "cachalot/server/router.hpp"
#include "server/purge_api.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include <atomic>

namespace cachalot::server {
namespace {

// Where a variant is stored: the primary key, the epoch and the variant key.
std::string variant_storage_key(const std::string& key, const std::string& epoch, const std::string& variant) {
    return key + "\x1f" + epoch + "\x1f" + variant;
}

// Names a set of variants stored together.
std::string new_epoch() {
    static std::atomic<std::uint64_t> counter{0};
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    return std::to_string(t) + "." + std::to_string(++counter);
}

// The unsafe methods whose success invalidates what is stored for the URI (RFC 9111 §4.4).
// Only the known ones: a made-up method such as FOO answered 2xx by a lenient origin must not
// let any client empty the cache.
bool invalidating_method(bhttp::verb m) {
    return m == bhttp::verb::post || m == bhttp::verb::put || m == bhttp::verb::delete_ || m == bhttp::verb::patch;
}

// Moves a body from the origin into `transfer` (its first bytes, then the rest as they arrive),
// then calls `finish(transfer)`. It runs on its own, so that a fetch the store or coalesced
// requests still want completes after the first client went away; when nobody wants the rest,
// it stops and the origin connection is closed. `hold` keeps what `rest` and `finish` use alive.
template <class Finish>
net::awaitable<void> pump(std::shared_ptr<const void> hold, std::shared_ptr<cache::Transfer> transfer, std::string first,
                          std::unique_ptr<upstream::BodyReader> rest, const metrics::Metrics& metrics, Finish finish) {
    bool wanted = true;
    if (!first.empty()) wanted = co_await transfer->append(std::move(first));
    std::string bytes;
    while (wanted) {
        const auto ec = co_await rest->read(bytes);
        if (ec) {
            metrics.streams_interrupted(false).Increment();
            spdlog::warn("an origin response body was cut short after {} bytes: {}", transfer->size(), ec.message());
            break;
        }
        if (bytes.empty()) {
            transfer->end(cache::Transfer::State::Complete);
            break;
        }
        wanted = co_await transfer->append(std::move(bytes));
    }
    transfer->end(cache::Transfer::State::Failed);  // (does nothing once complete)
    rest.reset();
    finish(*transfer);
}

// The part a stored 206 holds: what its Content-Range names, when its body is exactly that.
std::optional<http::Part> stored_part(const cache::Entry& entry) {
    if (entry.status != 206) return std::nullopt;
    for (const auto& [name, value] : entry.headers) {
        if (!http::iequals(name, "Content-Range")) continue;
        auto part = http::parse_content_range(value);
        if (part && part->range.size() == entry.body.size()) return part;
        return std::nullopt;
    }
    return std::nullopt;
}

std::string_view field_of(const cache::Entry& entry, std::string_view name) {
    for (const auto& [n, v] : entry.headers)
        if (http::iequals(n, name)) return v;
    return {};
}

// A new part of the same representation (the same strong ETag and length) that overlaps or
// touches a stored one becomes one part of their union (RFC 9111 §3.4), the new bytes winning;
// the whole becomes a complete 200. Nothing changes when they do not combine, or when the
// union would be larger than `limit`.
void combine(const cache::Entry& prior, cache::Entry& entry, std::size_t limit) {
    const auto a = stored_part(prior), b = stored_part(entry);
    if (!a || !b || a->length != b->length) return;
    const auto etag = field_of(entry, "ETag");
    if (etag.empty() || etag.substr(0, 2) == "W/" || field_of(prior, "ETag") != etag) return;
    if (b->range.first > a->range.last + 1 || a->range.first > b->range.last + 1) return;
    const http::ByteRange whole{std::min(a->range.first, b->range.first), std::max(a->range.last, b->range.last)};
    if (whole.size() > limit) return;
    std::string body(static_cast<std::size_t>(whole.size()), '\0');
    body.replace(static_cast<std::size_t>(a->range.first - whole.first), prior.body.size(), prior.body);
    body.replace(static_cast<std::size_t>(b->range.first - whole.first), entry.body.size(), entry.body);
    entry.body = std::move(body);
    std::erase_if(entry.headers, [](const auto& h) {
        return http::iequals(h.first, "Content-Range") || http::iequals(h.first, "Content-Length");
    });
    if (whole.first == 0 && whole.last + 1 == a->length) entry.status = 200;
    else entry.headers.emplace_back("Content-Range", http::content_range(whole, a->length));
}

}  // namespace

// ---- what the steps hand each other ---------------------------------------------------------

/// A request as every step after `receive` sees it. Never changed.
struct Pipeline::Parsed {
    const Request& request;  // the client's head, the route's request_headers applied; no body
    const ClientInfo& client;
    std::size_t route_index;
    const config::Route& route;
    const cache::Policy& policy;
    const metrics::RouteSeries& series;
    bhttp::verb method;
    unsigned version;
    bool use_cache;   // a GET or HEAD without a body, on a caching route, with a cache tier
    bool with_body;   // a GET or HEAD with a body: its answer depends on bytes the key does not hold
    std::string url;  // scheme://authority/path?query, normalized by the route's key rules (purges name it)
    std::string key;  // the primary key, when the cache is used
    cache::RequestDirectives directives;
    upstream::BodyReader* upload = nullptr;  // the body, when it streams from the client
    upstream::InterimSink* interim = nullptr;  // the client's, for its own fetch's 1xx
};

/// What the primary key holds, for the names of its Vary fields and the epoch of its variants.
struct Pipeline::Primary {
    std::vector<std::string> vary;
    std::string epoch;
};

struct Pipeline::Found {
    std::optional<Primary> primary;
    std::optional<cache::Entry> stored;    // the stored response for this request, fresh or not
    std::optional<cache::Entry> partial;   // a stored part that does not hold what it asks for
    cache::Fwd fwd = cache::Fwd::UriMiss;  // why the origin is asked, if it is
    cache::Purged purged = cache::Purged::None;  // what a purge did to the stored response found
    store::WallMillis stale_since = 0;           // Purged::Stale: since when (0: not purged)
};

/// A stored response judged at some time, ready to deliver.
struct Pipeline::Stored {
    Response response;  // its status and fields, no body
    cache::Judged judged;
};

/// What a fetch leaves behind besides the client's answer.
struct Pipeline::Fetched {
    core::WallMillis sent_ms = 0;  // when the request left for the origin: what is stored is as of then
    Answer answer;
    std::shared_ptr<const cache::Entry> stored;  // what was stored (for the waiters)
    bool origin_failed = false;
};

Pipeline::Pipeline(const config::Config& cfg, upstream::Origin& origin, cache::TieredCache cache,
                   cache::FetchLock fetch_lock, const metrics::Metrics& metrics, core::ByteBudget& budget,
                   core::WallClock clock)
    : cfg_(cfg),
      origin_(origin),
      cache_(cache),
      fetch_lock_(std::move(fetch_lock)),
      metrics_(metrics),
      budget_(budget),
      clock_(std::move(clock)) {
    policies_.reserve(cfg.routes.size());
    for (const auto& route : cfg.routes) policies_.emplace_back(route.cache, cfg.cache);
    for (const auto& network : cfg.purge_method.allow)
        if (auto n = core::parse_network(network)) purge_from_.push_back(*n);
    const auto& c = cfg.cache;
    std::vector<std::string> ours;
    if (c.strip_targeted_fields) {
        ours.emplace_back("CDN-Cache-Control");
        if (!c.targeted_field.empty()) ours.push_back(c.targeted_field);
    }
    if (c.tags.strip) ours.insert(ours.end(), {c.tags.header, "Cache-Tag", "Cache-Groups"});
    for (auto& name : ours)
        if (!name.empty()) for_this_cache_.emplace_back(bhttp::string_to_field(name), std::move(name));
}

net::awaitable<Answer> Pipeline::handle(Request& request, const ClientInfo& client, upstream::BodyReader* upload,
                                        upstream::InterimSink* interim) {
    std::string body = std::move(request.body());
    auto parsed = receive(request, client, !body.empty() || upload);
    if (parsed) {
        parsed->upload = upload;
        parsed->interim = interim;
    }
    if (!parsed) {
        Answer answer;
        answer.response = make_error_response(404, request.version(), "no route for this request");
        co_return answer;
    }
    if (parsed->method == bhttp::verb::purge && !purge_from_.empty()) co_return purge(*parsed);
    // (Both fill handle()'s answer: a response is not moved from frame to frame.)
    Answer answer;
    if (parsed->use_cache) co_await use_cache(*parsed, answer);
    else co_await bypass(*parsed, std::move(body), answer);
    respond(*parsed, answer);
    co_return answer;
}

// ---- receive ----------------------------------------------------------------------------------

std::optional<Pipeline::Parsed> Pipeline::receive(Request& request, const ClientInfo& client, bool with_body) const {
    const auto index = match_route(cfg_.routes, client.authority.host, http::path_of(request.target()));
    if (!index) return std::nullopt;
    const auto& route = cfg_.routes[*index];
    // Before the key is built, so that the key and Vary see what the origin will see.
    http::erase_named(request.base(), route.request_headers.strip);
    for (const auto& [name, value] : route.request_headers.set) request.set(name, value);

    const auto method = request.method();
    const bool get_or_head = method == bhttp::verb::get || method == bhttp::verb::head;
    Parsed p{request,  client,           *index, route, policies_[*index], metrics_.route(*index), method,
             request.version(), cache_.enabled() && route.cache.enabled && get_or_head && !with_body,
             get_or_head && with_body, {}, {}, {}};
    if (p.use_cache) {
        p.url = cache::normalized_url("http", client.authority, request.target(), route.cache.key);
        p.key = cache::primary_key(request.method_string(), p.url, request.base(), route.cache.key);
        p.directives = cache::request_directives(request.base());
    }
    return p;
}

// ---- purge ------------------------------------------------------------------------------------

// PURGE on the proxy listener (purge_method.allow): a hard purge of the URL, for the allowed
// client networks only; never forwarded.
Answer Pipeline::purge(const Parsed& p) {
    Answer answer;
    answer.route = p.route_index;
    const bool allowed = std::any_of(purge_from_.begin(), purge_from_.end(),
                                     [&](const core::Network& n) { return n.contains(p.client.address); });
    if (!allowed) {
        spdlog::warn("PURGE refused from {}: not in purge_method.allow", p.client.address);
        metrics_.purge_refusals(metrics::Metrics::PurgeRefusal::Forbidden).Increment();
        answer.response = make_error_response(403, p.version, "PURGE is not allowed from this address");
        return answer;
    }
    PurgeOrder order;
    order.kind = cache::PurgeKind::Url;
    order.what = cache::normalized_url("http", p.client.authority, p.request.target(), p.route.cache.key);
    order.scopes.push_back(cache::purge_scope(cache::PurgeKind::Url, "", order.what));
    const auto at = clock_();
    cache_.purge(order.scopes.front(), order.mode, at);
    metrics_.purges(order.kind, order.mode).Increment();
    spdlog::info("purge from {} (PURGE): url hard {}", p.client.address, order.what);
    answer.response = Response{bhttp::status::ok, p.version};
    answer.response.set(bhttp::field::content_type, "application/json");
    answer.response.body() = purge_answer(order, at);
    answer.response.prepare_payload();
    return answer;
}

// ---- bypass -----------------------------------------------------------------------------------

net::awaitable<void> Pipeline::bypass(const Parsed& p, std::string body, Answer& answer) {
    answer.outcome.result = cache::Result::Bypass;
    answer.outcome.fwd = cache::Fwd::Bypass;
    // A GET or HEAD with a body is forwarded with it (search APIs put queries there), but it is
    // never looked up, stored or shared.
    if (p.with_body && p.route.cache.enabled && cache_.enabled()) answer.outcome.detail = cache::Detail::RequestBody;
    const Validators none;  // named: GCC 12 mishandles temporaries that live across a co_await
    std::unique_ptr<upstream::BodyReader> rest;
    const auto sent_ms = clock_();
    const bool answered = co_await forward(p, std::move(body), none, answer, rest) == Reach::Answered;
    if (cache_.enabled() && answered && invalidating_method(p.method) && answer.response.result_int() < 400)
        invalidate(p, answer.response);
    if (auto as_get = answered ? post_as_get(p, answer.response) : std::nullopt) {
        // (After the invalidation: what it stores is the URI's new state.)
        const auto received_ms = clock_();
        const http::Time now{std::chrono::floor<http::Seconds>(std::chrono::milliseconds(received_ms))};
        const auto delay = std::chrono::milliseconds(std::max<core::WallMillis>(0, received_ms - sent_ms));
        Fetched fetched;
        fetched.sent_ms = sent_ms;
        std::optional<cache::FetchLock::Write> no_lock;
        store(*as_get, Found{}, std::move(answer), now - std::chrono::floor<http::Seconds>(delay), now, fetched,
              std::move(rest), no_lock);
        answer = std::move(fetched.answer);
        co_return;
    }
    pass_through(answer, std::move(rest));
}

// A response to POST with explicit freshness whose Content-Location is the request's own URI is
// the new state of that resource, and a later GET of it may reuse it (RFC 9110 §9.3.3, RFC 9111
// §4): the request seen as a GET of that URI, for store(); nothing otherwise.
std::optional<Pipeline::Parsed> Pipeline::post_as_get(const Parsed& p, const Response& response) const {
    if (p.method != bhttp::verb::post || !p.route.cache.enabled || !cache_.enabled()) return std::nullopt;
    const auto location = http::parse_request_target(response[bhttp::field::content_location]);
    if (!location || location->form == http::RequestTarget::Form::Asterisk) return std::nullopt;
    if (location->authority && !(*location->authority == p.client.authority)) return std::nullopt;
    const auto& rules = p.route.cache.key;
    const auto url = cache::normalized_url("http", p.client.authority, p.request.target(), rules);
    if (cache::normalized_url("http", p.client.authority, location->origin_form, rules) != url) return std::nullopt;
    if (!p.policy.explicit_freshness(response.base())) return std::nullopt;
    Parsed as_get = p;
    as_get.method = bhttp::verb::get;
    as_get.use_cache = true;
    as_get.url = url;
    as_get.key = cache::primary_key("GET", url, p.request.base(), rules);
    as_get.directives = cache::request_directives(p.request.base());
    return as_get;
}

// A successful unsafe request changes the resource: what is stored for its URI, and for a
// same-origin Location or Content-Location, is dropped (RFC 9111 §4.4); so are the groups its
// response names in Cache-Group-Invalidation, which are this origin's own (RFC 9875).
void Pipeline::invalidate(const Parsed& p, const Response& response) {
    const auto& rules = p.route.cache.key;
    auto drop = [&](std::string_view target) {
        const auto url = cache::normalized_url("http", p.client.authority, target, rules);
        cache_.erase(cache::primary_key("GET", url, p.request.base(), rules));
    };
    drop(p.request.target());
    for (auto field : {bhttp::field::location, bhttp::field::content_location}) {
        auto target = http::parse_request_target(response[field]);
        if (!target || target->form == http::RequestTarget::Form::Asterisk) continue;
        if (!target->authority || *target->authority == p.client.authority) drop(target->origin_form);
    }
    const std::string origin = "http://" + p.client.authority.to_string();
    for (const auto& f : response.base()) {
        if (!http::iequals(f.name_string(), "Cache-Group-Invalidation")) continue;
        const auto groups = cache::parse_group_list(f.value());
        if (!groups) continue;
        for (const auto& group : *groups) {
            cache_.purge(cache::purge_scope(cache::PurgeKind::Group, origin, group), cache::PurgeMode::Hard, clock_());
            metrics_.purges(cache::PurgeKind::Group, cache::PurgeMode::Hard).Increment();
        }
    }
}

// ---- lookup -----------------------------------------------------------------------------------

net::awaitable<void> Pipeline::use_cache(const Parsed& p, Answer& answer) {
    Found found = co_await lookup(p);
    answer = co_await answer_with(p, found);
    answer.outcome.purged = found.purged;
}

// The stored response found, or the origin's through one fetch per key.
net::awaitable<Answer> Pipeline::answer_with(const Parsed& p, Found& found) {
    if (found.stored && !serves(p, *found.stored)) {
        found.partial = std::move(found.stored);
        found.stored.reset();
        found.fwd = cache::Fwd::Partial;
    }
    if (found.stored) {
        auto stored = judge(p, *found.stored, now(), found.stale_since);
        const auto use = p.policy.usability(p.directives, stored.judged);
        if (use != http::Usability::MustRevalidate) {
            cache::Outcome outcome;
            outcome.result = cache::Result::Hit;
            outcome.ttl = stored.judged.remaining().count();
            if (use == http::Usability::StaleWhileRevalidate) {
                outcome.detail = cache::Detail::StaleWhileRevalidate;
                revalidate_in_background(p, found);
            }
            co_return deliver(p, std::move(stored), std::move(found.stored->body), std::move(outcome));
        }
        found.fwd = p.directives.fwd_when_stale();
    }
    if (p.directives.cc.only_if_cached) {
        Answer answer;
        answer.response = make_error_response(504, p.version, "only-if-cached and nothing usable is stored");
        answer.outcome.fwd = found.fwd;
        answer.outcome.detail = cache::Detail::OnlyIfCached;
        co_return answer;
    }
    std::optional<cache::FetchLock::Write> write;
    if (auto answered = co_await coalesce(p, found, write)) co_return std::move(*answered);
    auto fetched = co_await fetch(p, found, write);
    co_return std::move(fetched.answer);
}

net::awaitable<Pipeline::Found> Pipeline::lookup(const Parsed& p, bool l2_only) {
    Found found;
    auto primary = co_await cache_.lookup(p.key, l2_only);
    if (!primary) co_return found;
    found.primary = Primary{primary->vary, primary->vary_epoch};
    if (primary->vary.empty()) {
        found.stored = std::move(primary);
        co_return purged(p, std::move(found));
    }
    // The primary entry names the Vary fields; the request's values pick the variant.
    if (primary->vary != std::vector<std::string>{"*"}) {
        const auto variant = cache::variant_key(primary->vary, p.request.base());
        if (variant == primary->variant) {
            found.stored = std::move(primary);
        } else {
            auto entry = co_await cache_.lookup(variant_storage_key(p.key, found.primary->epoch, variant), l2_only);
            if (entry && entry->vary == found.primary->vary && entry->variant == variant) found.stored = std::move(entry);
        }
    }
    if (!found.stored) found.fwd = cache::Fwd::VaryMiss;
    co_return purged(p, std::move(found));
}

// Whether a stored response can answer the request: a complete one always (the policy says
// when); a stored part only a GET for ranges it holds (or none of which fit the whole: 416).
bool Pipeline::serves(const Parsed& p, const cache::Entry& entry) const {
    if (entry.status != 206) return true;
    const auto part = stored_part(entry);
    if (!part || p.method != bhttp::verb::get || !http::has_range(p.request.base())) return false;
    http::Fields fields;
    for (const auto& [name, value] : entry.headers) fields.insert(name, value);
    const auto answer = http::answer_range(p.request.base(), fields, part->length, now());
    if (answer.kind == http::RangeAnswer::Kind::Unsatisfiable) return true;
    return answer.kind == http::RangeAnswer::Kind::Partial &&
           std::all_of(answer.ranges.begin(), answer.ranges.end(), [&](const http::ByteRange& r) {
               return r.first >= part->range.first && r.last <= part->range.last;
           });
}

// A hard purge makes the stored response a miss; a soft one makes it stale (judge() says how).
Pipeline::Found Pipeline::purged(const Parsed& p, Found found) const {
    if (!found.stored) return found;
    const auto verdict = cache_.purge_verdict(*found.stored);
    switch (verdict.state) {
        case cache::PurgeVerdict::State::Kept: break;
        case cache::PurgeVerdict::State::Gone:
            found.stored.reset();
            found.fwd = cache::Fwd::UriMiss;
            found.purged = cache::Purged::Gone;
            break;
        case cache::PurgeVerdict::State::Stale:
            found.purged = cache::Purged::Stale;
            found.stale_since = verdict.stale_since;
            break;
    }
    return found;
}

Pipeline::Stored Pipeline::judge(const Parsed& p, const cache::Entry& entry, http::Time now,
                                 store::WallMillis stale_since) const {
    // The response is built first and its fields serve the policy too: one header block per hit.
    Stored stored{Response{static_cast<bhttp::status>(entry.status), p.version}, {}};
    for (const auto& [name, value] : entry.headers) stored.response.insert(name, value);
    stored.judged = p.policy.judge(entry, stored.response.base(), now);
    if (stale_since != 0) stored.judged = cache::stale_since(stored.judged, std::chrono::milliseconds(stale_since), now);
    return stored;
}

// ---- deliver ----------------------------------------------------------------------------------

// The stored response as this request gets it: 304, 206 or 416 when its conditions and range
// say so, HEAD without body, with Age.
Answer Pipeline::deliver(const Parsed& p, Stored stored, std::string body, cache::Outcome outcome,
                         std::unique_ptr<cache::Transfer::Reader> stream) const {
    Answer answer;
    answer.outcome = std::move(outcome);
    auto& res = answer.response;
    res = std::move(stored.response);
    if (stream) {
        answer.stream = std::move(stream);  // the session frames it
    } else {
        res.body() = std::move(body);
        res.prepare_payload();
    }
    answer_conditions(p, answer, now());
    if (p.method == bhttp::verb::head) res.body().clear();  // Content-Length stays
    res.set(bhttp::field::age, std::to_string(std::max<std::int64_t>(0, stored.judged.age.count())));
    return answer;
}

// The client's If-None-Match or If-Modified-Since, and a GET's Range, answered from a complete
// 2xx response (stored, or just fetched whole for it): 304 when the client's copy is current,
// else 206 with the range (one part, or multipart/byteranges when the body is here whole), or
// 416 when no range starts inside the body. A body still streaming in whose length was not
// announced is sent whole, as is one asked for several ranges: RFC 9110 §14.2 allows both.
void Pipeline::answer_conditions(const Parsed& p, Answer& answer, http::Time now) const {
    auto& res = answer.response;
    const unsigned status = res.result_int();
    if (status / 100 != 2) return;  // preconditions apply to 2xx answers only (RFC 9110 §13.2.1)
    if (http::not_modified(p.request.base(), res.base(), now)) {
        Response not_modified{bhttp::status::not_modified, p.version};
        for (const auto& f : res.base())
            if (http::sent_with_304(f.name_string()) || f.name() == bhttp::field::via)
                not_modified.insert(f.name(), f.name_string(), f.value());
        res = std::move(not_modified);
        answer.stream.reset();
        return;
    }
    if (p.method != bhttp::verb::get || !http::has_range(p.request.base())) return;
    // What the answer holds: the whole (a 200), or one part of it (a 206, stored or the origin's).
    std::uint64_t offset = 0;
    std::optional<std::uint64_t> length;
    if (status == 200) {
        length = answer.stream ? answer.stream->length() : std::optional<std::uint64_t>(res.body().size());
    } else if (status == 206 && !answer.stream) {
        const auto part = http::parse_content_range(res[bhttp::field::content_range]);
        if (!part || part->range.size() != res.body().size()) return;
        offset = part->range.first;
        length = part->length;
    }
    if (!length) return;
    const auto range = http::answer_range(p.request.base(), res.base(), *length, now);
    if (range.kind == http::RangeAnswer::Kind::Full) return;
    const auto held_end = status == 200 ? *length : offset + res.body().size();
    for (const auto& r : range.ranges)
        if (r.first < offset || r.last >= held_end) return;  // (a part the origin chose: as it is)
    if (range.kind == http::RangeAnswer::Kind::Unsatisfiable) {
        Response unsatisfiable{bhttp::status::range_not_satisfiable, p.version};
        for (const auto& f : res.base())
            if (f.name() == bhttp::field::via || f.name() == bhttp::field::etag || f.name() == bhttp::field::last_modified)
                unsatisfiable.insert(f.name(), f.name_string(), f.value());
        unsatisfiable.set(bhttp::field::content_range, http::unsatisfied_range(*length));
        unsatisfiable.prepare_payload();
        res = std::move(unsatisfiable);
        answer.stream.reset();
        return;
    }
    if (range.ranges.size() == 1) {
        const auto r = range.ranges.front();
        res.result(bhttp::status::partial_content);
        res.set(bhttp::field::content_range, http::content_range(r, *length));
        if (answer.stream) {
            answer.stream->only(r.first, r.last);
        } else {
            res.body() = res.body().substr(static_cast<std::size_t>(r.first - offset), static_cast<std::size_t>(r.size()));
            res.prepare_payload();
        }
        return;
    }
    if (answer.stream) return;
    const auto boundary = http::new_boundary();
    res.body() = http::multipart_byteranges(res.body(), offset, *length, range.ranges, res[bhttp::field::content_type],
                                            boundary);
    res.erase(bhttp::field::content_range);
    res.result(bhttp::status::partial_content);
    res.set(bhttp::field::content_type, "multipart/byteranges; boundary=" + boundary);
    res.prepare_payload();
}

// stale-while-revalidate: one background revalidation per key (none if a fetch is in flight).
void Pipeline::revalidate_in_background(const Parsed& p, const Found& found) {
    auto write = fetch_lock_.try_acquire(p.key);
    if (!write) return;
    p.series.background_revalidations->Increment();
    // The client's GET without its conditions and directives: it refreshes the stored
    // response, whatever this client already has.
    auto request = std::make_shared<Request>(p.request);
    request->method(bhttp::verb::get);
    for (auto f : {bhttp::field::if_none_match, bhttp::field::if_modified_since, bhttp::field::if_match,
                   bhttp::field::if_unmodified_since, bhttp::field::if_range, bhttp::field::range,
                   bhttp::field::cache_control, bhttp::field::pragma})
        request->erase(f);
    auto run = [](std::shared_ptr<const void> hold, Pipeline* self, std::shared_ptr<Request> request,
                  ClientInfo client, Found found, std::optional<cache::FetchLock::Write> write) -> net::awaitable<void> {
        const auto parsed = self->receive(*request, client, false);
        if (!parsed) co_return;
        found.fwd = cache::Fwd::Stale;
        auto fetched = co_await self->fetch(*parsed, found, write);
        fetched.answer.stream.reset();  // nobody reads it here: a body kept for the store still completes
        if (!fetched.answer.outcome_pending) parsed->series.record(fetched.answer.outcome);
    };
    net::co_spawn(origin_.executor(), run(owner_.lock(), this, std::move(request), p.client, found, std::move(write)), net::detached);
}

// ---- coalesce ---------------------------------------------------------------------------------

// GETs share one fetch per key, conditional and range ones too: the fetch is for the whole
// response, and each request's conditions are answered from it. If-Match or
// If-Unmodified-Since, and HEAD, are forwarded as they are: their answers are not stored, so
// there is nothing to share. Empty: this request fetches (holding `write` when others may wait
// on it).
net::awaitable<std::optional<Answer>> Pipeline::coalesce(const Parsed& p, Found& found,
                                                         std::optional<cache::FetchLock::Write>& write) {
    if (p.method != bhttp::verb::get || p.directives.conditional) co_return std::nullopt;
    // While another node fetches: its entry, once L2 has it fresh (L1 may hold the stale copy
    // this node started from).
    cache::FetchLock::Prober probe = [this, &p]() -> net::awaitable<cache::FetchLock::Probe> {
        auto in_l2 = co_await lookup(p, true);
        if (in_l2.stored) {
            if (judge(p, *in_l2.stored, now(), in_l2.stale_since).judged.remaining() > http::Seconds{0})
                co_return cache::FetchLock::Probe{std::move(in_l2.stored), false};
        } else if (in_l2.primary) {
            co_return cache::FetchLock::Probe{std::nullopt, true};  // another variant was fetched
        }
        co_return cache::FetchLock::Probe{};
    };
    auto acquired = co_await fetch_lock_.acquire(p.key, probe);
    if (auto* w = std::get_if<cache::FetchLock::Write>(&acquired)) {
        write.emplace(std::move(*w));
        co_return std::nullopt;
    }
    const auto& wait = std::get<cache::FetchLock::Wait>(acquired);
    if (wait.end == cache::FetchLock::End::Done) {
        const auto& entry = *wait.published.entry;
        // Its body may still be arriving: then this request reads it as it comes, unless the
        // transfer no longer holds its first bytes (then it fetches on its own).
        // A part is read from the store, whole, and only for ranges it holds.
        if (entry.status == 206 && (wait.published.body || !serves(p, entry))) co_return std::nullopt;
        auto reader = wait.published.body ? wait.published.body->read() : nullptr;
        const bool readable = !wait.published.body || reader;
        if (readable && (entry.vary.empty() || cache::variant_key(entry.vary, p.request.base()) == entry.variant)) {
            auto stored = judge(p, entry, now());
            cache::Outcome outcome;
            outcome.fwd = found.fwd;
            outcome.fwd_status = entry.status;
            outcome.collapsed = true;
            outcome.ttl = stored.judged.remaining().count();
            co_return deliver(p, std::move(stored), entry.body, std::move(outcome), std::move(reader));
        }
        if (!readable) co_return std::nullopt;
        // Another variant was stored meanwhile (or is streaming in, not stored yet: its head
        // names the epoch): this one joins its epoch, or the primary key would be taken over and
        // the other variant lost.
        if (wait.published.body) {
            found.primary = Primary{entry.vary, entry.vary_epoch};
        } else {
            auto again = co_await lookup(p);
            found.primary = std::move(again.primary);
        }
    } else if (wait.end == cache::FetchLock::End::OriginFailed && found.stored) {
        // The origin just failed the fetch this request waited on: a stored response that
        // stale-if-error, stale_if_disconnected or grace allow answers now, without asking the
        // failing origin again.
        auto stored = judge(p, *found.stored, now(), found.stale_since);
        if (auto reason = p.policy.stale_on_error(p.directives, stored.judged, wait.published.origin_unreachable);
            reason != cache::Detail::None) {
            cache::Outcome outcome;
            outcome.fwd = found.fwd;
            outcome.collapsed = true;
            outcome.detail = reason;
            co_return deliver(p, std::move(stored), found.stored->body, std::move(outcome));
        }
    }
    co_return std::nullopt;  // on its own: nothing to share, another variant, holder gone, waited too long
}

// ---- fetch ------------------------------------------------------------------------------------

// Publishes what it leaves for the requests waiting on `write`: when the body streams and is
// kept for the store, at once, with the transfer they read it from.
net::awaitable<Pipeline::Fetched> Pipeline::fetch(const Parsed& p, const Found& found,
                                                  std::optional<cache::FetchLock::Write>& write) {
    // A stored response that may not be used as it is, but has validators, is revalidated: the
    // origin answers 304 if it is still current (RFC 9111 §4.3.1).
    Validators validators;
    validators.answered_here = p.method == bhttp::verb::get && p.directives.answered_here;
    // With a part stored (its whole was too large to store, or the origin answers in parts),
    // ranges are asked for as they are: the part is revalidated with them, or filled by them.
    const auto* part_entry = found.stored ? &*found.stored : found.partial ? &*found.partial : nullptr;
    validators.keep_range = validators.answered_here && http::has_range(p.request.base()) && part_entry &&
                            stored_part(*part_entry);
    if (found.stored && !p.directives.conditional && p.method == bhttp::verb::get) {
        for (const auto& [name, value] : found.stored->headers) {
            if (http::iequals(name, "ETag")) validators.etag = value;
            if (http::iequals(name, "Last-Modified")) validators.last_modified = value;
        }
    }
    Answer answer;
    answer.outcome.fwd = found.fwd;
    const auto sent_ms = clock_();
    p.series.origin_fetches->Increment();
    std::string no_body;
    std::unique_ptr<upstream::BodyReader> rest;
    auto reach = co_await forward(p, std::move(no_body), validators, answer, rest);
    // A range of a body announced larger than the store takes: the range itself is asked for
    // instead of the whole (the connection that brought the head is closed).
    const bool range_instead = validators.answered_here && !validators.keep_range && http::has_range(p.request.base()) &&
                               reach == Reach::Answered && answer.response.result_int() == 200 && rest &&
                               rest->length() && *rest->length() > store_limit();
    if (range_instead) {
        rest.reset();
        answer = Answer{};
        answer.outcome.fwd = found.fwd;
        const Validators as_sent;
        reach = co_await forward(p, std::string(), as_sent, answer, rest);
    }
    const bool answered = reach == Reach::Answered;
    const auto received_ms = clock_();
    const http::Time now{std::chrono::floor<http::Seconds>(std::chrono::milliseconds(received_ms))};
    // The response delay in whole seconds, measured in milliseconds, not as the difference of
    // two rounded clock readings (which would make a 300 ms fetch count as a second of age).
    const auto delay = std::chrono::milliseconds(std::max<core::WallMillis>(0, received_ms - sent_ms));
    const auto request_time = now - std::chrono::floor<http::Seconds>(delay);
    const unsigned status = answer.response.result_int();
    if (answered) answer.outcome.fwd_status = status;

    Fetched fetched;
    fetched.sent_ms = sent_ms;
    fetched.origin_failed = !answered || status == 500 || status == 502 || status == 503 || status == 504;
    const bool unreachable = reach == Reach::Unreachable;
    if (fetched.origin_failed && found.stored) {
        auto stored = judge(p, *found.stored, now, found.stale_since);
        if (auto reason = p.policy.stale_on_error(p.directives, stored.judged, unreachable); reason != cache::Detail::None) {
            auto outcome = answer.outcome;
            outcome.detail = reason;
            fetched.answer = deliver(p, std::move(stored), found.stored->body, std::move(outcome));
            fetched.answer.upstream_seconds = answer.upstream_seconds;
            if (write) write->publish({nullptr, true, false, nullptr, unreachable});
            co_return fetched;
        }
    }
    if (!answered) {
        answer.outcome.detail = cache::Detail::OriginUnavailable;
        fetched.answer = std::move(answer);
    } else if (!range_instead && !validators.empty() && status == 304) {
        refresh(p, found, std::move(answer), request_time, now, fetched);
    } else {
        store(p, found, std::move(answer), request_time, now, fetched, std::move(rest), write);
        if (validators.answered_here) answer_conditions(p, fetched.answer, now);
    }
    if (write) write->publish({fetched.stored, fetched.origin_failed, false, nullptr, unreachable});
    co_return fetched;
}

// Sends the request to the route's origin; Failed or Unreachable when the origin failed (the
// answer then holds the proxy's own 502 or 504). Unreachable: refused, reset or closed before a
// response, or silent past read_timeout; a response that would not parse is Failed.
net::awaitable<Pipeline::Reach> Pipeline::forward(const Parsed& p, std::string body, const Validators& validators,
                                                  Answer& answer, std::unique_ptr<upstream::BodyReader>& rest) {
    const auto& upstream = cfg_.upstreams[p.route.upstream_index];
    auto request = origin_request(p.request, std::move(body), p.client, upstream, validators, p.upload);
    if (upstream.balance == config::Balance::ConsistentHash)  // the normalized URL; the target when there is none
        request.affinity = upstream::affinity_of(p.url.empty() ? std::string_view(p.request.target()) : p.url);
    auto fetched = co_await origin_.fetch(p.route.upstream_index, request, p.upload, p.interim);
    answer.upstream_seconds = fetched.seconds;
    if (!fetched.response) {
        if (fetched.error == metrics::UpstreamError::Unavailable)
            answer.response = make_error_response(503, p.version, "every server of this upstream is failing; try again");
        else if (fetched.error == metrics::UpstreamError::Busy)
            answer.response = make_error_response(503, p.version, "too many requests in flight to this upstream; try again");
        else if (fetched.error == metrics::UpstreamError::Tls)
            answer.response = make_error_response(502, p.version, "no trusted TLS connection to the origin could be made");
        else if (fetched.timed_out())
            answer.response = make_error_response(504, p.version, "the origin did not answer in time");
        else
            answer.response = make_error_response(502, p.version, "the origin could not be reached or answered badly");
        co_return fetched.error == metrics::UpstreamError::BadResponse || fetched.body_failed ? Reach::Failed
                                                                                                : Reach::Unreachable;
    }
    answer.response = std::move(*fetched.response);
    rest = std::move(fetched.rest);
    prepare_for_client(answer.response, p.method, p.version, rest != nullptr);
    co_return Reach::Answered;
}

// ---- store ------------------------------------------------------------------------------------

// A body still arriving streams to the client, and is stored when it completes, if it fits what
// a tier takes; the requests waiting on `write` read it as it arrives.
void Pipeline::store(const Parsed& p, const Found& found, Answer answer, http::Time request_time, http::Time now,
                     Fetched& fetched, std::unique_ptr<upstream::BodyReader> rest,
                     std::optional<cache::FetchLock::Write>& write) {
    const auto& res = answer.response;
    const unsigned status = res.result_int();
    const auto decision = p.policy.decide_store(p.method == bhttp::verb::head, p.directives, p.request.base(), status,
                                                res.base(), request_time, now);
    answer.outcome.detail = decision.refused;
    if (decision.refused != cache::Detail::None) {
        pass_through(answer, std::move(rest));
        fetched.answer = std::move(answer);
        return;
    }
    auto entry = p.policy.entry_for(decision, status, res.base(), res.body(), p.request.base(), request_time, now);
    entry.fetched_ms = fetched.sent_ms;
    tag(p, entry, res.base());
    if (!rest) {
        // (A part that streams in is stored on its own.)
        if (const auto& prior = found.stored ? found.stored : found.partial; prior) combine(*prior, entry, store_limit());
        if (put(p.key, entry, found.primary, decision.expiry_ms)) {
            answer.outcome.stored = true;
            answer.outcome.ttl = decision.judged.remaining().count();
            fetched.stored = std::make_shared<const cache::Entry>(std::move(entry));
        } else {
            answer.outcome.detail = cache::Detail::TooLarge;
        }
        fetched.answer = std::move(answer);
        return;
    }
    auto transfer = cache::Transfer::make(rest->length(), store_limit(), upstream::kStreamWindow, budget_.reserve());
    if (!transfer->kept()) {  // announced larger than any tier takes
        answer.outcome.detail = cache::Detail::TooLarge;
        stream(answer, std::move(transfer), std::move(rest), [](const cache::Transfer&) {});
        fetched.answer = std::move(answer);
        return;
    }
    // Cache-Status says stored (the head goes before the body has come): a body that turns out
    // too large or is cut short is not, and the metrics record what happened at its end.
    answer.outcome.stored = true;
    answer.outcome.ttl = decision.judged.remaining().count();
    answer.outcome_pending = true;
    entry.body.clear();
    // The variants' epoch is chosen now, and published with the head: a waiting request of
    // another variant stores its own under it meanwhile (put() keeps a primary's epoch).
    std::optional<Primary> primary = found.primary;
    if (!entry.vary.empty()) {
        entry.vary_epoch = primary && primary->vary == entry.vary && !primary->epoch.empty() ? primary->epoch : new_epoch();
        primary = Primary{entry.vary, entry.vary_epoch};
    }
    if (write) {
        write->publish({std::make_shared<const cache::Entry>(entry), false, false, transfer});
        fetched.stored = nullptr;
    }
    auto finish = [this, key = p.key, primary = std::move(primary), entry = std::move(entry), expiry = decision.expiry_ms,
                   outcome = answer.outcome, series = &p.series,
                   write = std::move(write)](const cache::Transfer& t) mutable {
        outcome.stored = false;
        outcome.ttl.reset();
        if (auto body = t.whole()) {
            entry.body = std::move(*body);
            outcome.stored = put(key, entry, primary, expiry);
        }
        if (!outcome.stored && t.state() == cache::Transfer::State::Complete) outcome.detail = cache::Detail::TooLarge;
        series->record(outcome);
        write.reset();  // the Redis lock, if held, goes after the queued L2 write
    };
    write.reset();
    stream(answer, std::move(transfer), std::move(rest), std::move(finish));
    fetched.answer = std::move(answer);
}

// The answer's body streams: the client reads it from `transfer` as `rest` brings it in.
template <class Finish>
void Pipeline::stream(Answer& answer, std::shared_ptr<cache::Transfer> transfer,
                      std::unique_ptr<upstream::BodyReader> rest, Finish finish) {
    answer.stream = transfer->read();
    std::string first = std::move(answer.response.body());
    answer.response.body().clear();
    net::co_spawn(origin_.executor(),
                  pump(owner_.lock(), std::move(transfer), std::move(first), std::move(rest), metrics_, std::move(finish)),
                  net::detached);
}

// The answer's body streams to the client, and is not kept.
void Pipeline::pass_through(Answer& answer, std::unique_ptr<upstream::BodyReader> rest) {
    if (!rest) return;
    auto transfer = cache::Transfer::make(rest->length(), 0, upstream::kStreamWindow, {});
    stream(answer, std::move(transfer), std::move(rest), [](const cache::Transfer&) {});
}

// The largest body a tier may take (entries are a little larger: their fields).
std::size_t Pipeline::store_limit() const {
    std::size_t limit = 0;
    if (cfg_.cache.l1.size > 0) limit = cfg_.cache.l1.max_object_size;
    if (cfg_.cache.l2.enabled()) limit = std::max(limit, cfg_.cache.l2.max_object_size);
    return limit;
}

// Still current: the stored response, refreshed by the 304's fields, is stored again and served
// (RFC 9111 §4.3.4).
void Pipeline::refresh(const Parsed& p, const Found& found, Answer answer, http::Time request_time, http::Time now,
                       Fetched& fetched) {
    auto merged = p.policy.refreshed(*found.stored, answer.response.base(), request_time, now);
    merged.fetched_ms = fetched.sent_ms;  // current as of this revalidation: earlier purges no longer cover it
    auto stored = judge(p, merged, now);
    tag(p, merged, stored.response.base());
    answer.outcome.result = cache::Result::Revalidated;
    if (stored.judged.remaining() > http::Seconds{0} && !stored.judged.cc.no_store &&
        put(p.key, merged, found.primary, p.policy.expiry_ms(stored.judged, now))) {
        answer.outcome.stored = true;
        answer.outcome.ttl = stored.judged.remaining().count();
        fetched.stored = std::make_shared<const cache::Entry>(merged);
    }
    fetched.answer = deliver(p, std::move(stored), std::move(merged.body), std::move(answer.outcome));
    fetched.answer.upstream_seconds = answer.upstream_seconds;
}

// The purge scopes of `entry`: its URL's, and those of the tags `fields` name, bounded; what
// the bounds cut is counted.
void Pipeline::tag(const Parsed& p, cache::Entry& entry, const http::Fields& fields) const {
    std::vector<std::string> tags, groups;
    if (const auto cut = cache::response_tags(fields, cfg_.cache.tags, tags, groups))
        metrics_.tags_cut().Increment(static_cast<double>(cut));
    entry.purge_slots = cache::purge_slots(p.url, tags, groups);
}

// Stores `entry` under `key` and, with Vary, under its variant key. Variants stored together
// share an epoch: the primary's while its Vary names hold, so that the other variants stay
// reachable; a new one otherwise. False if no tier took it.
bool Pipeline::put(const std::string& key, cache::Entry& entry, const std::optional<Primary>& primary,
                   std::int64_t expiry_ms) {
    if (entry.status == 206 && !stored_part(entry)) return false;  // its body is not the part it names
    if (!entry.vary.empty())
        entry.vary_epoch =
            primary && primary->vary == entry.vary && !primary->epoch.empty() ? primary->epoch : new_epoch();
    const auto bytes = cache::encode_entry(entry);
    if (!cache_.insert(key, bytes, expiry_ms)) return false;
    if (entry.vary.empty()) return true;
    return cache_.insert(variant_storage_key(key, entry.vary_epoch, entry.variant), bytes, expiry_ms);
}

http::Time Pipeline::now() const {
    return http::Time{std::chrono::floor<http::Seconds>(std::chrono::milliseconds(clock_()))};
}

// ---- respond ----------------------------------------------------------------------------------

void Pipeline::respond(const Parsed& p, Answer& answer) const {
    answer.route = p.route_index;
    if (cfg_.cache.debug_cache_status) answer.outcome.key = p.key;
    add_cache_status(answer.response, cache::cache_status_entry(answer.outcome, kPseudonym));
    // Fields meant for this cache only: one pass over the response's, comparing Beast's field
    // codes first (a name is compared only for a field Beast does not know, as these are).
    if (!for_this_cache_.empty()) {
        auto& fields = answer.response.base();
        for (auto it = fields.begin(); it != fields.end();) {
            const bool ours = std::any_of(for_this_cache_.begin(), for_this_cache_.end(), [&](const auto& f) {
                return f.first == it->name() && (f.first != bhttp::field::unknown || http::iequals(f.second, it->name_string()));
            });
            it = ours ? fields.erase(it) : std::next(it);
        }
    }
    if (!answer.outcome_pending) p.series.record(answer.outcome);
}

}  // namespace cachalot::server
