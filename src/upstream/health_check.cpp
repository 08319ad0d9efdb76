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
net::awaitable<bool> check_once(const config::Upstream& up, const Balancer::Target& where, TlsClient* tls) {
    const auto& server = up.servers[where.config];
    auto ex = co_await net::this_coro::executor;
    tcp::resolver::results_type results;
    if (!where.address.empty()) {
        beast::error_code ec;
        const auto address = net::ip::make_address(where.address, ec);
        if (ec) co_return false;
        results = tcp::resolver::results_type::create(tcp::endpoint(address, server.port), server.host,
                                                      std::to_string(server.port));
    } else {
        tcp::resolver resolver(ex);
        auto [rec, found] = co_await resolver.async_resolve(server.host, std::to_string(server.port), use_tuple);
        if (rec) co_return false;
        results = std::move(found);
    }
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
                                  std::shared_ptr<TlsClient> tls, std::shared_ptr<const std::atomic<bool>> stop) {
    const auto& hc = up.health_check;
    net::steady_timer timer(co_await net::this_coro::executor);
    const auto generation = balancer.target(u, s).generation;
    unsigned passes = 0, failures = 0;
    for (;;) {
        if (*stop) co_return;  // its configuration was replaced
        const auto where = balancer.target(u, s);
        if (!where.active || where.generation != generation) co_return;  // its address went away
        const bool ok = co_await check_once(up, where, tls.get());
        if (*stop) co_return;
        balancer.record_check(u, s, ok);
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

HealthChecks::HealthChecks(net::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
                           Balancer& balancer)
    : executor_(std::move(executor)), upstreams_(upstreams), balancer_(balancer) {
    for (const auto& up : upstreams)
        tls_.push_back(up.tls.enabled && !up.health_check.path.empty() ? std::make_shared<TlsClient>(up) : nullptr);
}

HealthChecks::~HealthChecks() = default;

void HealthChecks::start(const std::shared_ptr<const std::atomic<bool>>& stop) {
    stop_ = stop;
    for (std::size_t u = 0; u < upstreams_.size(); ++u)
        for (std::size_t s = 0; s < balancer_.size(u); ++s) watch(u, s);
}

void HealthChecks::watch(std::size_t u, std::size_t s) {
    const auto& up = upstreams_[u];
    auto stop = stop_.lock();
    if (up.health_check.path.empty() || !stop || !balancer_.target(u, s).active) return;
    net::co_spawn(executor_, check_server(up, u, s, balancer_, tls_[u], std::move(stop)), net::detached);
}

}  // namespace cachalot::upstream
