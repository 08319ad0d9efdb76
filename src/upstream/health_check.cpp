#include "cachalot/upstream/health_check.hpp"

#include "core/net.hpp"
#include "upstream/tls.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cachalot::upstream {
namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// The check's exchange on a connected stream: true for an expected status.
template <class Stream>
net::awaitable<bool> exchange(Stream& stream, const config::Upstream& up, const config::Server& server) {
    const auto& hc = up.health_check;
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, hc.path, 11};
    req.set(bhttp::field::host, server.label());
    req.set(bhttp::field::user_agent, "cachalot-health-check");
    req.keep_alive(false);
    auto [wec, written] = co_await bhttp::async_write(stream, req, use_tuple);
    if (wec) co_return false;
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024);
    auto [ec, read] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
    if (ec) co_return false;
    const unsigned status = parser.get().result_int();
    co_return std::find(hc.expect.begin(), hc.expect.end(), status) != hc.expect.end();
}

// One check: true when the server answered the path with an expected status within the
// timeout; over TLS (verified as requests are) when `tls` is set.
net::awaitable<bool> check_once(const config::Upstream& up, const config::Server& server, TlsClient* tls) {
    auto ex = co_await net::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(server.host, std::to_string(server.port), use_tuple);
    if (rec) co_return false;
    beast::tcp_stream stream(ex);
    stream.expires_after(up.health_check.timeout);
    auto [cec, endpoint] = co_await stream.async_connect(results, use_tuple);
    if (cec) co_return false;
    if (!tls) co_return co_await exchange(stream, up, server);
    net::ssl::stream<beast::tcp_stream&> secure(stream, tls->context());
    tls->prepare(secure.native_handle(), server);
    auto [hec] = co_await secure.async_handshake(net::ssl::stream_base::client, use_tuple);
    if (hec) co_return false;
    co_return co_await exchange(secure, up, server);
}

net::awaitable<void> check_server(const config::Upstream& up, std::size_t u, std::size_t s, Balancer& balancer,
                                  const metrics::Metrics& metrics, std::shared_ptr<TlsClient> tls) {
    const auto& hc = up.health_check;
    net::steady_timer timer(co_await net::this_coro::executor);
    const auto* series = s < metrics.upstream(u).servers.size() ? &metrics.upstream(u).servers[s] : nullptr;
    unsigned passes = 0, failures = 0;
    for (;;) {
        const bool ok = co_await check_once(up, up.servers[s], tls.get());
        if (series) (ok ? series->checks_passed : series->checks_failed)->Increment();
        if (ok) {
            failures = 0;
            if (++passes >= hc.healthy_after) balancer.set_checked(u, s, true);
        } else {
            passes = 0;
            if (++failures >= hc.unhealthy_after) balancer.set_checked(u, s, false);
        }
        timer.expires_after(hc.interval);
        co_await timer.async_wait(use_tuple);
    }
}

}  // namespace

void start_health_checks(net::any_io_executor executor, const config::Upstream& up, std::size_t u, Balancer& balancer,
                         const metrics::Metrics& metrics) {
    if (up.health_check.path.empty()) return;
    auto tls = up.tls.enabled ? std::make_shared<TlsClient>(up) : nullptr;
    for (std::size_t s = 0; s < up.servers.size(); ++s)
        net::co_spawn(executor, check_server(up, u, s, balancer, metrics, tls), net::detached);
}

}  // namespace cachalot::upstream
