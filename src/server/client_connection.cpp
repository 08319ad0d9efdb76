// A client connection (Worker::run_session): read a request (with limits and timeouts), hand it to the pipeline,
// write the response, repeat while keep-alive lasts. Pipelined requests queue in the buffer and
// are answered in order.

#include "cachalot/http/headers.hpp"
#include "cachalot/http/target.hpp"
#include "http/parser.hpp"
#include "cachalot/log/log.hpp"
#include "core/wire.hpp"
#include "core/deadline.hpp"
#include "server/worker.hpp"

#include <spdlog/spdlog.h>


namespace cachalot::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// Status for a request that could not be read, or 0 to close without answering (the client
// went away, or the server is draining).
unsigned status_for_read_error(const beast::error_code& ec, bool timed_out) {
    if (timed_out) return 408;
    if (ec == bhttp::error::header_limit) return 431;
    if (ec == bhttp::error::body_limit) return 413;
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
        return 400;
    return 0;
}

// Which host a request is for, or why it is refused (400): RFC 9112 §3.2 requires exactly one
// valid Host in HTTP/1.1; a proxy ignores it for an absolute-form target and uses the target's
// authority instead (§3.2.2). Checked on the head, before any body is read.
struct Admitted {
    http::RequestTarget target;
    http::Authority authority;
};
// Fills `out` (not returned: its strings are not moved again), or says why the request is refused.
std::optional<std::string_view> admit(const Request& req, Admitted& out) {
    auto target = http::parse_request_target(req.target());
    if (!target || (target->form == http::RequestTarget::Form::Asterisk && req.method() != bhttp::verb::options))
        return "invalid request target";
    std::size_t hosts = 0;
    std::string_view host_value;
    for (const auto& f : req.base())
        if (f.name() == bhttp::field::host) ++hosts, host_value = f.value();
    if (hosts > 1) return "more than one Host field";
    if (hosts == 0 && req.version() >= 11) return "missing Host field";
    if (target->authority) {
        if (hosts == 1 && !http::parse_authority(host_value)) return "invalid Host field";
        out.authority = *target->authority;  // (absolute-form: rare)
    } else if (hosts == 1) {
        auto host = http::parse_authority(host_value);
        if (!host) return "invalid Host field";
        out.authority = std::move(*host);
    }
    out.target = std::move(*target);
    return std::nullopt;
}

// The request as every later step sees it, the origin included: target in origin-form, Host
// the normalized authority (the bytes the cache key uses), no hop-by-hop fields (the parser
// already dropped trailer fields). Connection may name any field but Host, which is set after
// the strip.
void normalize(Request& req, const Admitted& admitted) {
    http::strip_hop_by_hop(req.base());
    // (Mostly they are so already: then nothing is rewritten.)
    const auto host = admitted.authority.host.empty() ? std::string() : admitted.authority.to_string();
    const auto it = std::find_if(req.begin(), req.end(), [](const auto& f) { return f.name() == bhttp::field::host; });
    if (host.empty()) {
        if (it != req.end()) req.erase(it);
    } else if (it == req.end() || it->value() != host) {
        req.set(bhttp::field::host, host);
    }
    if (req.target() != admitted.target.origin_form) req.target(admitted.target.origin_form);
}

// A response whose body streams (Answer::stream), framed here: by the length the origin
// announced, else chunked for HTTP/1.1 and by the connection's close for HTTP/1.0. The head goes
// at once; each piece as it arrives, every write bounded by `send_timeout`. A body that ends
// short (the origin failed it) ends the connection without the framing's end, so the client
// sees a truncated response, never a complete-looking one. `sent`: body bytes written.
// Beast's keep_alive(bool), less its work when there is nothing to say: an HTTP/1.1 response
// without a Connection field is kept alive as it is (Beast would filter the field's tokens).
void set_keep_alive(Response& response, bool keep_alive) {
    if (keep_alive && response.version() >= 11 && response.find(bhttp::field::connection) == response.end()) return;
    response.keep_alive(keep_alive);
}

struct Streamed {
    beast::error_code ec;
    bool truncated = false;  // the origin cut the body short
};
net::awaitable<Streamed> write_streamed(tcp::socket& socket, Response& response, std::string& head,
                                        cache::Transfer::Reader& body, core::Deadline& deadline,
                                        std::chrono::milliseconds send_timeout, std::uint64_t& sent) {
    const auto length = body.length();
    const bool chunked = !length && response.version() >= 11;
    if (length) response.content_length(*length);
    else if (chunked) response.set(bhttp::field::transfer_encoding, "chunked");
    else response.keep_alive(false);
    head.clear();
    core::serialize_head(response, head);
    deadline.expires_after(send_timeout);
    if (auto ec = co_await core::write_message(socket, head, {})) co_return Streamed{ec};
    for (bool chunk_open = false;;) {  // chunk_open: the last chunk's CRLF goes before the next size line
        auto piece = co_await body.next();
        head.clear();
        if (chunk_open) head.append("\r\n");
        if (piece.bytes.empty()) {
            if (!body.complete()) co_return Streamed{{}, true};
            if (!chunked) co_return Streamed{};
            head.append("0\r\n\r\n");
        } else if (chunked) {
            char size[24];
            head.append(size, static_cast<std::size_t>(std::snprintf(size, sizeof size, "%zx\r\n", piece.bytes.size())));
            chunk_open = true;
        }
        std::string_view bytes = piece.bytes;
        deadline.expires_after(send_timeout);
        if (auto ec = co_await core::write_message(socket, head, bytes)) co_return Streamed{ec};
        sent += bytes.size();
        if (bytes.empty()) co_return Streamed{};
    }
}

// A request body that streams to the origin (an upload): read from the client as the origin
// exchange takes it, through the same parser (its limits apply: max_body_bytes, and
// body_timeout for each wait). An `Expect: 100-continue` is answered when the first byte is
// wanted, so that a client whose request fails first never sends its body.
class ClientBody final : public upstream::BodyReader {
public:
    ClientBody(tcp::socket& socket, beast::flat_buffer& buffer, http::RequestParser& parser, core::Deadline& deadline,
               std::chrono::milliseconds timeout, bool send_continue)
        : socket_(socket), buffer_(buffer), parser_(parser), deadline_(deadline), timeout_(timeout),
          send_continue_(send_continue) {}

    net::awaitable<beast::error_code> read(std::string& out) override {
        out.clear();
        if (send_continue_) {
            send_continue_ = false;
            static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            deadline_.expires_after(timeout_);
            if (auto ec = co_await core::write_message(socket_, kContinue, {})) co_return fail(ec);
        }
        out.swap(parser_.get().body());  // what came with the head
        while (out.empty() && !parser_.is_done()) {
            deadline_.expires_after(timeout_);
            if (auto ec = co_await core::read(socket_, buffer_, parser_, core::Until::More)) co_return fail(ec);
            out.swap(parser_.get().body());
        }
        co_return beast::error_code{};
    }
    std::optional<std::uint64_t> length() const override {
        auto n = parser_.content_length();
        return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
    }
    bool complete() const { return parser_.is_done(); }
    /// Why reading it failed (with whether its deadline had passed), if it did.
    const beast::error_code& error() const { return error_; }
    bool timed_out() const { return timed_out_; }

private:
    beast::error_code fail(beast::error_code ec) {
        error_ = ec;
        timed_out_ = deadline_.expired();
        return ec;
    }
    tcp::socket& socket_;
    beast::flat_buffer& buffer_;
    http::RequestParser& parser_;
    core::Deadline& deadline_;
    std::chrono::milliseconds timeout_;
    bool send_continue_;
    beast::error_code error_;
    bool timed_out_ = false;
};

// Interim responses from the origin (103 Early Hints, 102 Processing, …) on to the client as they
// come, before the final response: hop-by-hop fields removed, never to an HTTP/1.0 client (RFC
// 9110 §15.2). A write that fails is not retried; the final response then fails the same way.
class InterimToClient final : public upstream::InterimSink {
public:
    InterimToClient(tcp::socket& socket, core::Deadline& deadline, std::chrono::milliseconds timeout, unsigned version)
        : socket_(socket), deadline_(deadline), timeout_(timeout), version_(version) {}

    net::awaitable<void> send(const bhttp::response_header<>& head) override {
        if (version_ < 11 || failed_) co_return;
        bhttp::response_header<> out = head;
        http::strip_hop_by_hop(out);
        out.version(11);
        out.erase(bhttp::field::content_length);
        bytes_.clear();
        core::serialize_head(out, bytes_);
        deadline_.expires_after(timeout_);
        if (co_await core::write_message(socket_, bytes_, {})) failed_ = true;
    }

private:
    tcp::socket& socket_;
    core::Deadline& deadline_;
    std::chrono::milliseconds timeout_;
    unsigned version_;
    std::string bytes_;
    bool failed_ = false;
};

// Keeps the worker's list of sessions and the active-connections gauge in step with the session.
struct SessionRegistration {
    std::list<SessionHandle>& list;
    std::list<SessionHandle>::iterator it;
    prometheus::Gauge& gauge;
    SessionRegistration(std::list<SessionHandle>& l, tcp::socket& s, prometheus::Gauge& g)
        : list(l), it(l.insert(l.end(), SessionHandle{&s, false})), gauge(g) {
        gauge.Increment();
    }
    ~SessionRegistration() {
        list.erase(it);
        gauge.Decrement();
    }
};

}  // namespace

net::awaitable<void> Worker::run_session(tcp::socket socket) {
    // The configuration this connection's current request is served with (taken afresh for
    // each request: a reload applies to the next one).
    auto active = active_;
    const config::ClientLimits* limits = &active->cfg.client;
    beast::error_code ignored;
    auto peer = socket.remote_endpoint(ignored);
    const std::string peer_address = peer.address().to_string();
    socket.set_option(tcp::no_delay(true), ignored);
    socket.non_blocking(true, ignored);  // a response write tries a send before it waits

    SessionRegistration registration(sessions_, socket, metrics_.active_connections());
    core::Deadline deadline(socket);
    beast::flat_buffer buffer;
    std::string head;  // the response head being written (core::write_now)
    bool truncated = false;  // a streamed body was cut short: the connection ends with a reset

    // Answers a request that cannot be served and closes the connection. The close lingers:
    // what the client is still sending is read and dropped for a moment, so that the kernel
    // does not reset the connection before the client has read the answer.
    auto reject = [&](unsigned status, unsigned version, std::string_view detail) -> net::awaitable<void> {
        metrics_.rejected_requests(status).Increment();
        auto res = make_error_response(status, version ? version : 11, detail);
        res.keep_alive(false);
        deadline.expires_after(limits->send_timeout);
        co_await bhttp::async_write(socket, res, use_tuple);
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        deadline.expires_after(limits->lingering_timeout);
        std::array<char, 4096> sink;
        for (std::size_t drained = 0; drained < limits->max_body_bytes;) {
            auto [ec, n] = co_await socket.async_read_some(net::buffer(sink), use_tuple);
            if (ec) break;
            drained += n;
        }
    };

    for (;;) {
        // Between requests: wait for the next request's first byte, up to the idle timeout.
        if (buffer.size() == 0) {
            registration.it->idle = true;
            if (draining_ && !registration.it->fresh) break;
            deadline.expires_after(active_->cfg.client.idle_timeout);
            active.reset();  // (a connection waiting holds no configuration)
            auto [ec, n] = co_await socket.async_read_some(buffer.prepare(4096), use_tuple);
            registration.it->idle = false;
            if (ec) break;
            buffer.commit(n);
        }
        active = active_;
        limits = &active->cfg.client;

        http::RequestParser parser;
        parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits->max_header_bytes, UINT32_MAX)));
        parser.body_limit(limits->max_body_bytes);
        // The head's deadline is set only when the head is not all there yet (it usually is:
        // no clock reading for it then).
        beast::error_code hec;
        bool waited = false;
        if (!core::parse_buffered(buffer, parser, core::Until::Head, hec)) {
            deadline.expires_after(limits->header_timeout);
            waited = true;
            hec = co_await core::read(socket, buffer, parser, core::Until::Head);
        }
        if (hec) {
            if (auto status = status_for_read_error(hec, waited && deadline.expired()))
                co_await reject(status, parser.is_header_done() ? parser.get().version() : 11, hec.message());
            break;
        }
        registration.it->fresh = false;
        if (auto reason = http::ambiguous_framing(parser.get().base())) {
            co_await reject(400, parser.get().version(), *reason);
            break;
        }
        Admitted ok;
        if (auto refusal = admit(parser.get(), ok)) {
            co_await reject(400, parser.get().version(), *refusal);
            break;
        }
        // The body: what came with the head and what is ready now, up to a window. Most bodies
        // are complete then, and go on whole (charged to the node's budget while held); a larger
        // or slower one streams to the origin as the exchange takes it (ClientBody).
        auto request_held = budget_.reserve();
        std::optional<ClientBody> upload;
        if (!parser.is_done()) {
            const bool expect_continue = beast::iequals(parser.get()[bhttp::field::expect], "100-continue");
            if (!expect_continue) {
                if (auto ec = core::read_available(socket, buffer, parser, upstream::kStreamWindow)) {
                    if (auto status = status_for_read_error(ec, false)) co_await reject(status, parser.get().version(), ec.message());
                    break;
                }
            }
            if (!parser.is_done()) {
                upload.emplace(socket, buffer, parser, deadline, limits->body_timeout, expect_continue);
            } else if (!request_held.grow_to(parser.get().body().size())) {
                metrics_.buffer_refusals(false).Increment();
                co_await reject(503, parser.get().version(), "too many large request bodies in flight; try again");
                break;
            }
        }

        const auto start = Clock::now();
        // (A body still to stream is read through the parser: it keeps its message, the head is copied.)
        Request request = upload ? Request(parser.get().base()) : parser.release();
        const bool keep_alive = request.keep_alive();
        normalize(request, ok);
        std::string method(request.method_string());
        std::string target(request.target());
        const ClientInfo client{peer_address, std::move(ok.authority)};  // (ok is done with)
        InterimToClient interim(socket, deadline, limits->send_timeout, request.version());
        Answer outcome = co_await active->pipeline.handle(request, client, upload ? &*upload : nullptr, &interim);
        if (upload && upload->error()) {
            // The client's body failed, not the origin: answered as a failed read (413, 408, or
            // nothing when the client went away).
            if (auto status = status_for_read_error(upload->error(), upload->timed_out()))
                co_await reject(status, request.version(), upload->error().message());
            break;
        }
        // What waits for a slow client counts against the budget too, hits included (a body
        // that streams holds no more than the transfer's window).
        auto response_held = budget_.reserve();
        if (!response_held.grow_to(outcome.response.body().size())) {
            metrics_.buffer_refusals(true).Increment();
            outcome.response = make_error_response(503, request.version(), "too many large responses in flight; try again");
        }
        // A body the origin exchange did not take to its end is still in the way of the next request.
        set_keep_alive(outcome.response, keep_alive && !draining_ && (!upload || upload->complete()));

        beast::error_code wec;
        std::uint64_t body_bytes = outcome.response.body().size();
        if (outcome.stream) {
            body_bytes = 0;
            const auto streamed = co_await write_streamed(socket, outcome.response, head, *outcome.stream, deadline,
                                                          limits->send_timeout, body_bytes);
            outcome.stream.reset();  // done with it (the fetch stops if nobody else wants the rest)
            if (streamed.ec) {
                metrics_.streams_interrupted(true).Increment();
                wec = streamed.ec;
            } else if (streamed.truncated) {
                // Reset, not closed: for a body framed by the close, a clean close would make
                // the truncated body look complete.
                socket.set_option(net::socket_base::linger(true, 0), ignored);
                truncated = true;
                wec = net::error::connection_aborted;
            }
        } else {
            // (core/wire.hpp; `head` is the session's, so that its capacity is reused. Most
            // responses go at once: the coroutine that waits is made only when one does not.)
            head.clear();
            core::serialize_head(outcome.response, head);
            const std::string_view body = outcome.response.body();
            const auto sent = core::write_now(socket, head, body, wec);
            if (!wec && sent < head.size() + body.size()) {
                deadline.expires_after(limits->send_timeout);
                wec = co_await core::write_rest(socket, head, body, sent);
            }
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        const auto status = outcome.response.result_int();
        const auto& series = outcome.route ? active->generation->metrics.route(*outcome.route)
                                           : active->generation->metrics.unrouted();
        series.record(status, seconds);
        if (active->cfg.logging.access_log) {  // (the configuration the request started on)
            log::access({peer_address, method, target, status, body_bytes, seconds,
                         outcome.upstream_seconds, outcome.route ? active->cfg.routes[*outcome.route].name : ""});
        }
        if (wec || !outcome.response.keep_alive()) break;
    }
    if (!truncated) socket.shutdown(tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
}

}  // namespace cachalot::server
