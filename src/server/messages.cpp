#include "server/messages.hpp"

#include "cachalot/http/headers.hpp"

namespace cachalot::server {

Request origin_request(const Request& client_request, std::string body, const ClientInfo& client,
                       const config::Upstream& upstream, const Validators& validators) {
    Request req;
    req.method_string(client_request.method_string());  // made-up methods too
    req.target(client_request.target());
    req.version(11);
    for (const auto& f : client_request.base())
        if (f.name() != bhttp::field::expect)  // the body is here already: an interim 100 would only cost a round trip
            req.insert(f.name(), f.name_string(), f.value());
    http::add_forwarded(req.base(), {client.address, "http", client.authority.to_string()});
    http::add_via(req.base(), kPseudonym);
    if (client.authority.host.empty()) req.set(bhttp::field::host, upstream.host + ":" + std::to_string(upstream.port));
    if (!validators.etag.empty()) req.set(bhttp::field::if_none_match, validators.etag);
    else if (!validators.last_modified.empty()) req.set(bhttp::field::if_modified_since, validators.last_modified);
    req.body() = std::move(body);
    req.keep_alive(true);
    req.prepare_payload();
    return req;
}

void prepare_for_client(Response& res, bhttp::verb method, unsigned version, bool streamed) {
    std::string length(res[bhttp::field::content_length]);
    http::strip_hop_by_hop(res.base());
    http::add_via(res.base(), kPseudonym);
    res.version(version);
    if (streamed) {
        res.erase(bhttp::field::content_length);  // the session frames it
    } else if (method == bhttp::verb::head) {
        // No body was read: keep the length the origin announced for the GET.
        if (!length.empty()) res.set(bhttp::field::content_length, length);
    } else {
        res.prepare_payload();
    }
}

void add_cache_status(Response& res, std::string_view entry) {
    std::string value(res["Cache-Status"]);
    if (!value.empty()) value += ", ";
    value += entry;
    res.set("Cache-Status", value);
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

}  // namespace cachalot::server
