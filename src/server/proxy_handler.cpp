#include "server/proxy_handler.hpp"

#include "cachalot/http/headers.hpp"
#include "cachalot/server/router.hpp"

namespace cachalot::server {
namespace {

constexpr std::string_view kPseudonym = "cachalot";

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

}  // namespace

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

net::awaitable<Outcome> ProxyHandler::handle(Request& request, const ClientInfo& client) {
    Outcome out;
    auto host = normalized_host(request.target(), request[bhttp::field::host]);
    out.route = match_route(cfg_.routes, host, target_path(request.target()));
    if (!out.route) {
        out.response = make_error_response(404, request.version(), "no route for this request");
        co_return out;
    }
    const auto& route = cfg_.routes[*out.route];
    const auto method = request.method();
    const auto version = request.version();

    prepare_for_origin(request, client, host);
    auto fetched = co_await pool_.fetch(route.upstream_index, request);
    out.upstream_seconds = fetched.seconds;
    if (!fetched.response) {
        if (fetched.timed_out())
            out.response = make_error_response(504, version, "the origin did not answer in time");
        else
            out.response = make_error_response(502, version, "the origin could not be reached or answered badly");
        co_return out;
    }
    out.response = std::move(*fetched.response);
    out.response.version(version);
    prepare_for_client(out.response, method);
    co_return out;
}

}  // namespace cachalot::server
