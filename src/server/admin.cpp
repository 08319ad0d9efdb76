#include "server/admin.hpp"

namespace cachalot::server {
namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

bhttp::response<bhttp::string_body> answer(const bhttp::request<bhttp::string_body>& req, const AdminState& state) {
    bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::cache_control, "no-store");
    auto path = req.target().substr(0, req.target().find('?'));
    if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
        res.result(bhttp::status::method_not_allowed);
        res.set(bhttp::field::allow, "GET, HEAD");
        res.body() = "method not allowed\n";
    } else if (path == "/metrics") {
        res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = state.metrics.serialize();
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

net::awaitable<void> run_admin_session(tcp::socket socket, const AdminState& state) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(16 * 1024);
        parser.body_limit(0);
        stream.expires_after(state.timeout);
        auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (ec) break;
        auto res = answer(parser.get(), state);
        res.keep_alive(parser.get().keep_alive());
        stream.expires_after(state.timeout);
        auto [wec, wn] = co_await bhttp::async_write(stream, res, use_tuple);
        if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace cachalot::server
