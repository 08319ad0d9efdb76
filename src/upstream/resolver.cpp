#include "cachalot/upstream/resolver.hpp"

#include "core/net.hpp"
#include "upstream/dns.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <optional>
#include <random>

namespace cachalot::upstream {
namespace {

using udp = net::ip::udp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

bool is_address(const std::string& host) {
    beast::error_code ec;
    net::ip::make_address(host, ec);
    return !ec;
}

// One query to one nameserver, on a connected UDP socket (the kernel drops datagrams from
// anyone else); datagrams that are not its response are ignored until `timeout`.
net::awaitable<std::optional<dns::Answer>> ask(const config::Resolver::Nameserver& ns, const std::string& name,
                                               dns::Type type, std::chrono::milliseconds timeout) {
    static thread_local std::mt19937 random{std::random_device{}()};
    auto ex = co_await net::this_coro::executor;
    beast::error_code ec;
    const auto address = net::ip::make_address(ns.address, ec);
    if (ec) co_return std::nullopt;
    udp::socket socket(ex);
    socket.open(address.is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec) socket.connect({address, ns.port}, ec);
    if (ec) co_return std::nullopt;
    const auto id = static_cast<std::uint16_t>(random());
    const auto query = dns::query(id, name, type);
    if (query.empty()) co_return std::nullopt;
    auto [sec, sent] = co_await socket.async_send(net::buffer(query), use_tuple);
    if (sec) co_return std::nullopt;
    net::steady_timer timer(ex);
    timer.expires_after(timeout);
    timer.async_wait([&socket](const beast::error_code& e) {
        if (!e) socket.cancel();
    });
    std::array<char, 4096> buffer;
    for (;;) {
        auto [rec, n] = co_await socket.async_receive(net::buffer(buffer), use_tuple);
        if (rec) co_return std::nullopt;  // timed out, or refused (nothing listens there)
        if (auto answer = dns::parse(std::string_view(buffer.data(), n), id, name, type)) {
            timer.cancel();
            co_return answer;
        }
    }
}

// `name`'s addresses (A, then AAAA), from the first nameserver that answers; nothing when none did.
net::awaitable<std::optional<std::vector<std::string>>> ask_nameservers(const config::Resolver& resolver,
                                                                        const std::string& name) {
    std::vector<std::string> addresses;
    bool answered = false;
    for (const auto type : {dns::Type::A, dns::Type::AAAA}) {
        for (const auto& ns : resolver.nameservers) {
            auto answer = co_await ask(ns, name, type, resolver.timeout);
            if (!answer) continue;
            answered = true;
            if (answer->rcode == 0) addresses.insert(addresses.end(), answer->addresses.begin(), answer->addresses.end());
            break;
        }
    }
    if (!answered) co_return std::nullopt;
    co_return addresses;
}

net::awaitable<std::optional<std::vector<std::string>>> ask_system(const std::string& name) {
    tcp::resolver resolver(co_await net::this_coro::executor);
    auto [ec, results] = co_await resolver.async_resolve(name, "0", use_tuple);
    if (ec) co_return std::nullopt;
    std::vector<std::string> addresses;
    for (const auto& entry : results) addresses.push_back(entry.endpoint().address().to_string());
    co_return addresses;
}

net::awaitable<void> follow(const config::Config& config, std::size_t u, std::size_t c, Balancer& balancer,
                            std::function<void(std::size_t, std::size_t)> added,
                            std::shared_ptr<const std::atomic<bool>> stop) {
    const auto& up = config.upstreams[u];
    const auto& host = up.servers[c].host;
    net::steady_timer timer(co_await net::this_coro::executor);
    while (!*stop) {
        std::optional<std::vector<std::string>> addresses;  // (no co_await inside ?: with GCC 12)
        if (config.resolver.nameservers.empty())
            addresses = co_await ask_system(host);
        else
            addresses = co_await ask_nameservers(config.resolver, host);
        if (*stop) co_return;  // its configuration was replaced
        if (addresses) {
            std::sort(addresses->begin(), addresses->end());
            addresses->erase(std::unique(addresses->begin(), addresses->end()), addresses->end());
        }
        if (!addresses)
            spdlog::warn("upstream {}: cannot resolve {}; its last addresses stay", up.name, host);
        else if (addresses->empty())
            spdlog::warn("upstream {}: {} resolves to no address; its last addresses stay", up.name, host);
        else
            for (const auto s : balancer.resolved(u, c, *addresses)) added(u, s);
        timer.expires_after(config.resolver.interval);
        co_await timer.async_wait(use_tuple);
    }
}

}  // namespace

void start_resolving(net::any_io_executor executor, const config::Config& config, Balancer& balancer,
                     std::function<void(std::size_t u, std::size_t s)> added,
                     std::shared_ptr<const std::atomic<bool>> stop) {
    for (std::size_t u = 0; u < config.upstreams.size(); ++u)
        for (std::size_t c = 0; c < config.upstreams[u].servers.size(); ++c)
            if (!is_address(config.upstreams[u].servers[c].host))
                net::co_spawn(executor, follow(config, u, c, balancer, added, stop), net::detached);
}

}  // namespace cachalot::upstream
