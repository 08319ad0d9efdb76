#include "server/messages.hpp"

#include "cachalot/http/headers.hpp"
#include "core/wire.hpp"

namespace cachalot::server {

namespace {

// One field line, of a value that cannot break the head: parsed from a request (Beast's parser
// refuses CR, LF and NUL in fields), set by the route (the config loader checks those), or made of
// such values, validated authorities and addresses.
void append_field(std::string& head, std::string_view name, std::string_view value) {
    core::append_field_line(head, name, value);
}

// The same for a value from elsewhere (a stored validator, which a corrupt store could fill with
// anything): one with CR, LF or NUL is left out.
void append_checked_field(std::string& head, std::string_view name, std::string_view value) {
    for (const char c : value)
        if (c == '\r' || c == '\n' || c == '\0') return;
    append_field(head, name, value);
}

}  // namespace

upstream::OriginRequest origin_request(const Request& client_request, std::string body, const ClientInfo& client,
                                       const config::Upstream& upstream, const Validators& validators,
                                       const upstream::BodyReader* upload) {
    upstream::OriginRequest out;
    out.method = client_request.method();
    auto& head = out.head;
    head.reserve(512);
    head.append(client_request.method_string());  // made-up methods too
    head += ' ';
    head.append(client_request.target());
    head.append(" HTTP/1.1\r\n");
    const bool etag = !validators.etag.empty();
    const bool last_modified = !etag && !validators.last_modified.empty();
    for (const auto& f : client_request.base()) {
        switch (f.name()) {
        case bhttp::field::expect:  // the body is here already: an interim 100 would only cost a round trip
        case bhttp::field::content_length:  // framed below, by the body sent
        case bhttp::field::transfer_encoding:
            continue;
        case bhttp::field::if_none_match:
            if (etag || validators.answered_here) continue;
            break;
        case bhttp::field::if_modified_since:
            if (last_modified || validators.answered_here) continue;
            break;
        case bhttp::field::range:
        case bhttp::field::if_range:
            if (validators.answered_here && !validators.keep_range) continue;
            break;
        default:
            if (http::is_forwarding_field(f.name_string())) continue;
        }
        append_field(head, f.name_string(), f.value());
    }
    const auto authority = client.authority.to_string();
    const auto fwd = http::forwarding_fields(client_request.base(), {client.address, "http", authority}, kPseudonym);
    append_field(head, "X-Forwarded-For", fwd.x_forwarded_for);
    append_field(head, "Forwarded", fwd.forwarded);
    append_field(head, "X-Forwarded-Proto", fwd.x_forwarded_proto);
    if (!fwd.x_forwarded_host.empty()) append_field(head, "X-Forwarded-Host", fwd.x_forwarded_host);
    append_field(head, "Via", fwd.via);
    if (client.authority.host.empty())
        append_checked_field(head, "Host", upstream.servers.front().label());
    if (etag) append_checked_field(head, "If-None-Match", validators.etag);
    if (last_modified) append_checked_field(head, "If-Modified-Since", validators.last_modified);
    // Framed as the client framed a body that streams; a complete one by its length (and an
    // empty one only where the method expects a body, as Beast's prepare_payload does).
    const auto m = out.method;
    if (upload) {
        const auto length = upload->length();
        out.chunked = !length;
        if (length) append_field(head, "Content-Length", std::to_string(*length));
        else append_field(head, "Transfer-Encoding", "chunked");
    } else if (!body.empty() || m == bhttp::verb::post || m == bhttp::verb::put || m == bhttp::verb::options) {
        append_field(head, "Content-Length", std::to_string(body.size()));
    }
    head.append("\r\n");
    out.body = std::move(body);
    return out;
}

void prepare_for_client(Response& res, bhttp::verb method, unsigned version, bool streamed) {
    // (Connection may name Content-Length: a HEAD keeps the origin's all the same.)
    std::string length;
    if (method == bhttp::verb::head) length = res[bhttp::field::content_length];
    http::strip_hop_by_hop(res.base());
    http::add_via(res.base(), kPseudonym);
    res.version(version);
    if (streamed) {
        res.erase(bhttp::field::content_length);  // the session frames it
    } else if (method == bhttp::verb::head) {
        // No body was read: keep the length the origin announced for the GET.
        if (!length.empty()) res.set(bhttp::field::content_length, length);
    } else {
        // Most origins announced the length of the body they sent: then there is nothing to do.
        std::size_t lengths = 0;
        bool same = false;
        for (const auto& f : res.base()) {
            if (f.name() != bhttp::field::content_length) continue;
            ++lengths;
            same = f.value() == std::to_string(res.body().size());
        }
        if (lengths != 1 || !same) res.prepare_payload();
    }
}

void add_cache_status(Response& res, std::string_view entry) {
    const auto it = res.find("Cache-Status");
    if (it == res.end()) {  // (usually: no cache before this one)
        res.insert("Cache-Status", entry);
        return;
    }
    std::string value(it->value());
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
