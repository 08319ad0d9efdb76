#include "server/purge_api.hpp"

#include "cachalot/cache/key.hpp"
#include "cachalot/cache/purge.hpp"
#include "cachalot/http/target.hpp"
#include "cachalot/server/router.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace cachalot::server {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxTags = 1024;

// Why a request is refused: a sentence for the 400 answer.
struct Refusal {
    std::string why;
};

// A string member, or why not.
std::variant<std::string, Refusal> string_member(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    if (!v || !v->is_string()) return Refusal{"\"" + std::string(name) + "\" must be a string"};
    return std::string(v->get_string());
}

std::variant<http::Authority, Refusal> host_member(const json::object& o) {
    if (!o.contains("host")) return Refusal{"\"host\" is required with a path"};
    auto host = string_member(o, "host");
    if (auto* r = std::get_if<Refusal>(&host)) return *r;
    auto authority = http::parse_authority(std::get<std::string>(host));
    if (!authority) return Refusal{"\"host\" is not a valid host[:port]"};
    return *authority;
}

// The route's key rules for a URL on `authority`, so that the URL is normalized as its key was.
const config::RouteKey& key_rules(const config::Config& cfg, const http::Authority& authority, std::string_view path) {
    static const config::RouteKey defaults;
    const auto route = match_route(cfg.routes, authority.host, path);
    return route ? cfg.routes[*route].cache.key : defaults;
}

std::variant<PurgeOrder, Refusal> url_order(const json::object& o, const config::Config& cfg) {
    auto text = string_member(o, "url");
    if (auto* r = std::get_if<Refusal>(&text)) return *r;
    auto target = http::parse_request_target(std::get<std::string>(text));
    if (!target || target->form == http::RequestTarget::Form::Asterisk)
        return Refusal{"\"url\" must be an absolute URL (http://host/path) or a path starting with '/'"};
    http::Authority authority;
    if (target->authority) {
        if (o.contains("host")) return Refusal{"give \"host\" only with a path, not with an absolute \"url\""};
        authority = *target->authority;
    } else {
        auto host = host_member(o);
        if (auto* r = std::get_if<Refusal>(&host)) return *r;
        authority = std::get<http::Authority>(host);
    }
    const auto& rules = key_rules(cfg, authority, http::path_of(target->origin_form));
    const auto url = cache::normalized_url("http", authority, target->origin_form, rules);
    PurgeOrder order;
    order.kind = cache::PurgeKind::Url;
    order.scopes.push_back(cache::purge_scope(cache::PurgeKind::Url, "", url));
    order.what = url;
    return order;
}

std::variant<PurgeOrder, Refusal> prefix_order(const json::object& o) {
    auto text = string_member(o, "prefix");
    if (auto* r = std::get_if<Refusal>(&text)) return *r;
    const auto& prefix = std::get<std::string>(text);
    if (prefix.empty() || prefix.front() != '/') return Refusal{"\"prefix\" must start with '/'"};
    if (prefix.find('?') != std::string::npos) return Refusal{"\"prefix\" is a path: it cannot hold a query"};
    if (!http::parse_request_target(prefix)) return Refusal{"\"prefix\" holds bytes a path cannot hold"};
    auto host = host_member(o);
    if (auto* r = std::get_if<Refusal>(&host)) return *r;
    const std::string origin = "http://" + std::get<http::Authority>(host).to_string();
    const auto path = cache::normalized_path(prefix);
    PurgeOrder order;
    order.kind = cache::PurgeKind::Prefix;
    order.scopes.push_back(cache::purge_scope(cache::PurgeKind::Prefix, origin, path));
    order.what = origin + path;
    return order;
}

std::variant<PurgeOrder, Refusal> tag_order(const json::object& o) {
    std::vector<std::string> tags;
    if (o.contains("tag")) {
        if (o.contains("tags")) return Refusal{"give \"tag\" or \"tags\", not both"};
        auto tag = string_member(o, "tag");
        if (auto* r = std::get_if<Refusal>(&tag)) return *r;
        tags.push_back(std::get<std::string>(tag));
    } else {
        const auto& v = o.at("tags");
        if (!v.is_array() || v.get_array().empty()) return Refusal{"\"tags\" must be a non-empty array of strings"};
        if (v.get_array().size() > kMaxTags) return Refusal{"\"tags\" holds more than 1024 tags"};
        for (const auto& t : v.get_array()) {
            if (!t.is_string()) return Refusal{"\"tags\" must be a non-empty array of strings"};
            tags.emplace_back(t.get_string());
        }
    }
    PurgeOrder order;
    order.kind = cache::PurgeKind::Tag;
    for (const auto& tag : tags) {
        if (tag.empty()) return Refusal{"a tag is empty"};
        for (unsigned char c : tag)
            if (c < 0x20 || c > 0x7e) return Refusal{"a tag holds a control or non-ASCII byte"};
        order.scopes.push_back(cache::purge_scope(cache::PurgeKind::Tag, "", tag));
        if (!order.what.empty()) order.what += ' ';
        order.what += tag;
    }
    return order;
}

std::variant<PurgeOrder, Refusal> parse(std::string_view text, const config::Config& cfg) {
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 4;
    const auto value = json::parse(text, ec, {}, options);
    if (ec) return Refusal{"the body is not valid JSON: " + ec.message()};
    if (!value.is_object()) return Refusal{"the body must be a JSON object"};
    const auto& o = value.get_object();
    static constexpr std::string_view kKinds[] = {"url", "prefix", "tag", "tags", "all"};
    int kinds = 0;
    for (const auto& member : o) {
        const std::string_view key = member.key();
        if (std::find(std::begin(kKinds), std::end(kKinds), key) != std::end(kKinds)) {
            if (key != "tags" || !o.contains("tag")) ++kinds;
        } else if (key != "soft" && key != "host") {
            return Refusal{"unknown member \"" + std::string(key) + "\" (expected url, prefix, tag, tags, all, "
                           "host, soft)"};
        }
    }
    if (kinds != 1) return Refusal{"give exactly one of \"url\", \"prefix\", \"tag\"/\"tags\" or \"all\""};

    bool soft = false;
    if (const auto* v = o.if_contains("soft")) {
        if (!v->is_bool()) return Refusal{"\"soft\" must be true or false"};
        soft = v->get_bool();
    }
    std::variant<PurgeOrder, Refusal> order;
    if (o.contains("url")) {
        order = url_order(o, cfg);
    } else if (o.contains("prefix")) {
        order = prefix_order(o);
    } else if (o.contains("all")) {
        if (o.contains("host")) return Refusal{"\"host\" goes with \"url\" or \"prefix\" only"};
        if (!o.at("all").is_bool() || !o.at("all").get_bool()) return Refusal{"\"all\" must be true"};
        PurgeOrder all;
        all.scopes.push_back(cache::purge_scope(cache::PurgeKind::All, "", ""));
        all.what = "everything";
        order = all;
    } else {
        if (o.contains("host")) return Refusal{"\"host\" goes with \"url\" or \"prefix\" only"};
        order = tag_order(o);
    }
    if (auto* p = std::get_if<PurgeOrder>(&order)) p->mode = soft ? cache::PurgeMode::Soft : cache::PurgeMode::Hard;
    return order;
}

}  // namespace

std::variant<PurgeOrder, std::string> parse_purge(std::string_view text, const config::Config& cfg) {
    auto parsed = parse(text, cfg);
    if (auto* refusal = std::get_if<Refusal>(&parsed)) return std::move(refusal->why);
    return std::move(std::get<PurgeOrder>(parsed));
}

void apply_purge(const PurgeOrder& order, store::PurgeTable& table, store::WallMillis now,
                 const metrics::Metrics& metrics) {
    for (const auto& scope : order.scopes) cache::purge(table, scope, order.mode, now);
    metrics.purges(order.kind, order.mode).Increment();
}

std::string purge_answer(const PurgeOrder& order, store::WallMillis at) {
    json::object o;
    o["purged"] = std::string(cache::to_string(order.kind));
    o["mode"] = std::string(cache::to_string(order.mode));
    o["what"] = order.what;
    o["at"] = at;  // the purge's time: entries fetched at or before it are covered
    return json::serialize(o) + "\n";
}

}  // namespace cachalot::server
