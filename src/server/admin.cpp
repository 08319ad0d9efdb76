#include "server/admin.hpp"

#include "cachalot/http/headers.hpp"
#include "server/purge_api.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

namespace cachalot::server {
namespace {

namespace json = boost::json;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

using AdminRequest = bhttp::request<bhttp::string_body>;
using AdminResponse = bhttp::response<bhttp::string_body>;

// Compares in a time that does not depend on where the strings differ (only on their length).
bool same_secret(std::string_view given, std::string_view secret) {
    if (given.size() != secret.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
    return diff == 0;
}

bool has_token(const AdminRequest& req, const config::Admin& admin) {
    if (admin.token.empty()) return true;
    const auto value = req[bhttp::field::authorization];
    constexpr std::string_view scheme = "Bearer ";
    if (value.size() <= scheme.size() || !http::iequals(value.substr(0, scheme.size()), scheme)) return false;
    return same_secret(value.substr(scheme.size()), admin.token);
}

void json_error(AdminResponse& res, bhttp::status status, std::string_view message) {
    res.result(status);
    res.set(bhttp::field::content_type, "application/json");
    res.body() = R"({"error":")";
    for (char c : message) {
        if (c == '"' || c == '\\') res.body() += '\\';
        res.body() += c;
    }
    res.body() += "\"}\n";
}

// An admin write (`what`) without the admin token, when one is configured: answered 401 here.
bool authorized(const AdminRequest& req, const config::Config& cfg, const char* what, const std::string& peer,
                AdminResponse& res) {
    if (has_token(req, cfg.admin)) return true;
    res.set(bhttp::field::www_authenticate, "Bearer");
    json_error(res, bhttp::status::unauthorized, "a valid admin token is required (Authorization: Bearer ...)");
    spdlog::warn("{} refused from {}: no valid token", what, peer);
    return false;
}

void purge(const AdminRequest& req, const AdminState& state, const config::Config& cfg, const std::string& peer,
           AdminResponse& res) {
    if (!authorized(req, cfg, "purge", peer, res)) {
        state.metrics.purge_refusals(metrics::Metrics::PurgeRefusal::Unauthorized).Increment();
        return;
    }
    auto parsed = parse_purge(req.body(), cfg);
    if (auto* refusal = std::get_if<std::string>(&parsed)) {
        json_error(res, bhttp::status::bad_request, *refusal);
        spdlog::warn("purge refused from {}: {}", peer, *refusal);
        state.metrics.purge_refusals(metrics::Metrics::PurgeRefusal::Invalid).Increment();
        return;
    }
    const auto& order = std::get<PurgeOrder>(parsed);
    const auto at = state.clock();
    apply_purge(order, state.purges, at, state.metrics);
    if (state.broadcast) state.broadcast(order, at);
    spdlog::info("purge from {}: {} {} {}", peer, cache::to_string(order.kind), cache::to_string(order.mode),
                 order.what);
    res.set(bhttp::field::content_type, "application/json");
    res.body() = purge_answer(order, at);
}

// {"upstreams":[{"name":…,"balance":…,"max_in_flight":…,"servers":[{"server":"address:port","host":…,"weight":…,
// "healthy":…,"outstanding":…,"failures_in_row":…,"ejected_ms_left":…}]}]}
std::string upstreams_json(const Generation& generation) {
    json::array upstreams;
    for (std::size_t u = 0; u < generation.cfg->upstreams.size(); ++u) {
        const auto& up = generation.cfg->upstreams[u];
        json::object o;
        o["name"] = up.name;
        o["balance"] = up.balance == config::Balance::LeastOutstanding ? "least_outstanding"
                       : up.balance == config::Balance::ConsistentHash ? "consistent_hash"
                                                                        : "round_robin";
        o["max_in_flight"] = up.max_in_flight;
        json::array servers;
        for (const auto& s : generation.balancer.state(u)) {
            json::object so;
            so["server"] = s.server;
            so["host"] = s.host;
            so["weight"] = s.weight;
            so["healthy"] = s.healthy;
            so["outstanding"] = s.outstanding;
            so["failures_in_row"] = s.failures_in_row;
            so["ejected_ms_left"] = s.ejected_ms_left;
            servers.push_back(std::move(so));
        }
        o["servers"] = std::move(servers);
        upstreams.push_back(std::move(o));
    }
    json::object root;
    root["upstreams"] = std::move(upstreams);
    return json::serialize(root) + "\n";
}

// POST /reload: the configuration file read again and, when it is valid and changes only
// what can change live, put in force.
void reload(const AdminRequest& req, const AdminState& state, const config::Config& cfg, const std::string& peer,
            AdminResponse& res) {
    if (!authorized(req, cfg, "reload", peer, res)) return;
    spdlog::info("reload asked for by {}", peer);
    const auto report = state.reload();
    using R = ReloadReport::Result;
    res.result(report.result == R::Invalid        ? bhttp::status::bad_request
               : report.result == R::NeedsRestart ? bhttp::status::conflict
                                                  : bhttp::status::ok);
    res.set(bhttp::field::content_type, "application/json");
    res.body() = reload_json(report);
}

AdminResponse answer(const AdminRequest& req, const AdminState& state, const std::string& peer) {
    const auto generation = state.current();  // (this request's configuration, to its end)
    const auto& cfg = *generation->cfg;
    AdminResponse res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::cache_control, "no-store");
    auto path = req.target().substr(0, req.target().find('?'));
    const bool read = req.method() == bhttp::verb::get || req.method() == bhttp::verb::head;
    if (path == "/purge" || path == "/reload") {
        if (req.method() != bhttp::verb::post) {
            res.set(bhttp::field::allow, "POST");
            json_error(res, bhttp::status::method_not_allowed, "use POST");
        } else if (path == "/purge") {
            purge(req, state, cfg, peer, res);
        } else {
            reload(req, state, cfg, peer, res);
        }
    } else if (!read) {
        res.result(bhttp::status::method_not_allowed);
        res.set(bhttp::field::allow, "GET, HEAD");
        res.body() = "method not allowed\n";
    } else if (path == "/metrics") {
        res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = state.metrics.serialize();
    } else if (path == "/upstreams") {
        res.set(bhttp::field::content_type, "application/json");
        res.body() = upstreams_json(*generation);
    } else if (path == "/healthz") {
        res.body() = "ok\n";
    } else if (path == "/readyz") {
        bool ready = state.ready.load();
        res.result(ready ? bhttp::status::ok : bhttp::status::service_unavailable);
        res.body() = ready ? "ready\n" : "not ready\n";
    } else {
        res.result(bhttp::status::not_found);
        res.body() = "not found\n";
    }
    res.prepare_payload();
    if (req.method() == bhttp::verb::head) res.body().clear();
    return res;
}

}  // namespace

std::string reload_json(const ReloadReport& report) {
    using R = ReloadReport::Result;
    json::object root;
    json::array items;
    for (const auto& item : report.items) items.emplace_back(item);
    switch (report.result) {
        case R::Reloaded:
            root["result"] = "reloaded";
            root["changed"] = std::move(items);
            break;
        case R::Unchanged:
            root["result"] = "unchanged";
            root["changed"] = std::move(items);
            break;
        case R::Invalid:
            root["result"] = "invalid";
            root["error"] = "the configuration is not valid; the running one stays";
            root["errors"] = std::move(items);
            break;
        case R::NeedsRestart:
            root["result"] = "needs_restart";
            root["error"] = "these changes need a restart; the running configuration stays";
            root["needs_restart"] = std::move(items);
            break;
    }
    return json::serialize(root) + "\n";
}

net::awaitable<void> run_admin_session(tcp::socket socket, const AdminState& state) {
    beast::error_code peer_ec;
    const auto remote = socket.remote_endpoint(peer_ec);
    const std::string peer = peer_ec ? "?" : remote.address().to_string();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(16 * 1024);
        const auto max_body = state.current()->cfg->admin.max_body_bytes;
        parser.body_limit(max_body);
        stream.expires_after(state.timeout);
        auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (ec == bhttp::error::body_limit) {
            AdminResponse res{bhttp::status::payload_too_large, parser.get().version()};
            json_error(res, bhttp::status::payload_too_large,
                       "the body is larger than admin.max_body_bytes (" +
                           std::to_string(max_body) + ")");
            res.keep_alive(false);
            res.prepare_payload();
            stream.expires_after(state.timeout);
            co_await bhttp::async_write(stream, res, use_tuple);
            break;
        }
        if (ec) break;
        auto res = answer(parser.get(), state, peer);
        res.keep_alive(parser.get().keep_alive());
        stream.expires_after(state.timeout);
        auto [wec, wn] = co_await bhttp::async_write(stream, res, use_tuple);
        if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace cachalot::server
