#include "cachalot/upstream/balancer.hpp"

#include <spdlog/spdlog.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>

namespace cachalot::upstream {

struct Balancer::Group {
    struct Server {
        int current = 0;              // smooth weighted round robin's running weight
        std::size_t outstanding = 0;  // requests picked and not yet released
        unsigned failures = 0;        // in a row
        unsigned ejections = 0;       // in a row: each doubles the next ejection
        Clock::time_point ejected_until{};
        bool ejected = false;
        bool checks_failing = false;  // active health checks took it out
        std::size_t config = 0;         // its entry in the upstream's servers
        std::string address;            // where it connects; empty: the entry's host, resolved per connection
        std::string label;              // address:port (the entry's host:port before it resolved)
        std::uint64_t generation = 0;   // bumped when the slot goes to another address
        bool active = true;             // the entry still resolves to `address`
        metrics::ServerSeries series{};  // (none while inactive)
    };
    Group(const config::Upstream& c, const metrics::Metrics& m, std::size_t u) : config(c), metrics(m) {
        for (std::size_t i = 0; i < c.servers.size(); ++i) {
            Server server;
            server.config = i;
            if (is_address(c.servers[i].host)) server.address = c.servers[i].host;
            server.label = c.servers[i].label();
            if (i < m.upstream(u).servers.size()) {
                server.series = m.upstream(u).servers[i];
                server.series.healthy->Set(1);
            }
            servers.push_back(std::move(server));
        }
        if (c.balance == config::Balance::ConsistentHash) build_ring();
    }
    const config::Upstream config;  // (a copy: a group outlives the configuration it came from on a reload)
    const metrics::Metrics metrics;
    std::mutex mutex;  // (a handful of servers, a few instructions per pick)
    std::vector<Server> servers;
    std::size_t cursor = 0;  // where least-outstanding starts looking, for ties
    // consistent_hash: each server's points (kPointsPerWeight per unit of weight, placed by a
    // hash of its host:port and the point's number), sorted. A server that goes or comes moves
    // only the URLs of its own arcs (ketama's scheme, as nginx's `hash … consistent`).
    static constexpr unsigned kPointsPerWeight = 160;
    std::vector<std::pair<std::uint64_t, std::size_t>> ring;

    void build_ring() {
        ring.clear();
        for (std::size_t s = 0; s < servers.size(); ++s) {
            if (!servers[s].active) continue;
            for (unsigned i = 0; i < kPointsPerWeight * weight(s); ++i) {
                const auto point = servers[s].label + "#" + std::to_string(i);
                ring.emplace_back(XXH3_64bits(point.data(), point.size()), s);
            }
        }
        std::sort(ring.begin(), ring.end());
    }

    unsigned weight(std::size_t s) const { return config.servers[servers[s].config].weight; }
    std::size_t active_count() const {
        return static_cast<std::size_t>(std::count_if(servers.begin(), servers.end(), [](const Server& x) { return x.active; }));
    }

    const metrics::ServerSeries* series_of(std::size_t s) const {
        return servers[s].series.healthy ? &servers[s].series : nullptr;
    }

    static bool is_address(const std::string& host) {
        unsigned char buffer[16];
        return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
    }
};

std::uint64_t affinity_of(std::string_view url) { return XXH3_64bits(url.data(), url.size()); }

Balancer::Balancer(const std::vector<config::Upstream>& upstreams, const metrics::Metrics& metrics,
                   std::function<Clock::time_point()> now)
    : now_(std::move(now)) {
    for (std::size_t u = 0; u < upstreams.size(); ++u) {
        groups_.push_back(std::make_shared<Group>(upstreams[u], metrics, u));
    }
}

Balancer::Balancer(const Balancer& previous, const std::vector<config::Upstream>& upstreams,
                   const metrics::Metrics& metrics)
    : now_(previous.now_) {
    for (std::size_t u = 0; u < upstreams.size(); ++u) {
        auto same = std::find_if(previous.groups_.begin(), previous.groups_.end(),
                                 [&](const auto& g) { return config::same_upstream(g->config, upstreams[u]); });
        groups_.push_back(same != previous.groups_.end() ? *same : std::make_shared<Group>(upstreams[u], metrics, u));
    }
}

Balancer::~Balancer() = default;

std::optional<std::size_t> Balancer::pick(std::size_t u, std::span<const std::size_t> skip, bool* busy,
                                          std::uint64_t affinity, std::uint64_t* generation) {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    if (g.config.max_in_flight > 0) {
        std::size_t in_flight = 0;
        for (const auto& server : g.servers) in_flight += server.outstanding;
        if (in_flight >= g.config.max_in_flight) {
            if (busy) *busy = true;
            return std::nullopt;
        }
    }
    auto eligible = [&](std::size_t s) {
        auto& server = g.servers[s];
        if (server.ejected && now_() >= server.ejected_until) {  // (the clock only for an ejected one)
            server.ejected = false;  // back on probation: its next failure ejects it again
            if (auto* m = g.series_of(s)) m->healthy->Set(server.checks_failing ? 0 : 1);
        }
        return server.active && !server.ejected && !server.checks_failing &&
               std::find(skip.begin(), skip.end(), s) == skip.end();
    };
    std::optional<std::size_t> chosen;
    const auto n = g.servers.size();
    if (g.config.balance == config::Balance::ConsistentHash) {
        // The first point at or after the URL's hash whose server takes requests (wrapping).
        const auto start = static_cast<std::size_t>(
            std::lower_bound(g.ring.begin(), g.ring.end(), std::pair{affinity, std::size_t{0}}) - g.ring.begin());
        std::vector<bool> tried(n);
        for (std::size_t i = 0, seen = 0; i < g.ring.size() && seen < n && !chosen; ++i) {
            const auto s = g.ring[(start + i) % g.ring.size()].second;
            if (tried[s]) continue;
            tried[s] = true;
            ++seen;
            if (eligible(s)) chosen = s;
        }
    } else if (g.config.balance == config::Balance::LeastOutstanding) {
        // Fewest in flight for its weight (compared without division); ties go round.
        for (std::size_t i = 0; i < n; ++i) {
            const auto s = (g.cursor + i) % n;
            if (!eligible(s)) continue;
            if (!chosen || g.servers[s].outstanding * g.weight(*chosen) < g.servers[*chosen].outstanding * g.weight(s))
                chosen = s;
        }
        g.cursor = (g.cursor + 1) % n;
    } else {
        // Smooth weighted round robin (nginx's): each eligible server gains its weight, the
        // richest is chosen and pays the total back. Weights 5,1,1 go a a b a c a a.
        int total = 0;
        for (std::size_t s = 0; s < n; ++s) {
            if (!eligible(s)) continue;
            auto& server = g.servers[s];
            server.current += static_cast<int>(g.weight(s));
            total += static_cast<int>(g.weight(s));
            if (!chosen || server.current > g.servers[*chosen].current) chosen = s;
        }
        if (chosen) g.servers[*chosen].current -= total;
    }
    if (!chosen) return std::nullopt;
    ++g.servers[*chosen].outstanding;
    if (generation) *generation = g.servers[*chosen].generation;
    if (auto* m = g.series_of(*chosen)) m->requests->Increment();
    return chosen;
}

void Balancer::report(std::size_t u, std::size_t s, bool failed) {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    auto& server = g.servers[s];
    auto* m = g.series_of(s);
    if (!failed) {
        server.failures = 0;
        server.ejections = 0;
        return;
    }
    if (m) m->failures->Increment();
    // One server has nowhere to fail over to: it is never ejected (as nginx).
    if (g.config.eject_after == 0 || g.active_count() <= 1 || server.ejected || !server.active) return;
    ++server.failures;
    // Back from an ejection and failing again: out at once, for twice as long.
    if (server.failures < g.config.eject_after && server.ejections == 0) return;
    const auto factor = 1u << std::min(server.ejections, 5u);
    server.ejected = true;
    server.ejected_until = now_() + g.config.eject_for * factor;
    server.failures = 0;
    ++server.ejections;
    if (m) {
        m->healthy->Set(0);
        m->ejections->Increment();
    }
    spdlog::warn("upstream {}: server {} ejected for {} ms after failing", g.config.name, server.label,
                 (g.config.eject_for * factor).count());
}

void Balancer::release(std::size_t u, std::size_t s) {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    auto& server = g.servers[s];
    if (server.outstanding > 0) --server.outstanding;
}

bool Balancer::healthy(std::size_t u, std::size_t s) const {
    auto& g = *groups_[u];
    const auto now = now_();
    std::lock_guard lock(g.mutex);
    const auto& server = g.servers[s];
    return !server.checks_failing && (!server.ejected || now >= server.ejected_until);
}

void Balancer::set_checked(std::size_t u, std::size_t s, bool passing) {
    auto& g = *groups_[u];
    const auto now = now_();
    std::lock_guard lock(g.mutex);
    auto& server = g.servers[s];
    if (server.checks_failing == !passing) return;
    server.checks_failing = !passing;
    if (auto* m = g.series_of(s)) m->healthy->Set(passing && !(server.ejected && now < server.ejected_until) ? 1 : 0);
    spdlog::warn("upstream {}: server {} {} its health checks", g.config.name, server.label,
                 passing ? "passes" : "fails");
}

std::vector<Balancer::ServerState> Balancer::state(std::size_t u) const {
    auto& g = *groups_[u];
    const auto now = now_();
    std::lock_guard lock(g.mutex);
    std::vector<ServerState> out;
    for (std::size_t s = 0; s < g.servers.size(); ++s) {
        const auto& server = g.servers[s];
        if (!server.active) continue;
        const bool ejected = server.ejected && now < server.ejected_until;
        out.push_back({server.label, g.config.servers[server.config].host, g.weight(s), !ejected && !server.checks_failing,
                       !server.checks_failing, server.outstanding,
                       server.failures,
                       ejected ? std::chrono::duration_cast<std::chrono::milliseconds>(server.ejected_until - now).count()
                               : 0});
    }
    return out;
}

Balancer::Target Balancer::target(std::size_t u, std::size_t s) const {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    const auto& server = g.servers.at(s);
    return {server.config, server.address, server.label, server.generation, server.active};
}

std::size_t Balancer::size(std::size_t u) const {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    return g.servers.size();
}

void Balancer::record_check(std::size_t u, std::size_t s, bool passed) {
    auto& g = *groups_[u];
    std::lock_guard lock(g.mutex);
    if (auto* m = g.series_of(s)) (passed ? m->checks_passed : m->checks_failed)->Increment();
}

std::vector<std::size_t> Balancer::resolved(std::size_t u, std::size_t c, const std::vector<std::string>& addresses) {
    auto& g = *groups_[u];
    std::vector<std::size_t> added;
    if (addresses.empty()) return added;  // nothing to go to: the last addresses stay
    std::lock_guard lock(g.mutex);
    const auto& entry = g.config.servers[c];
    auto label_of = [&](const std::string& address) {
        return (address.find(':') == std::string::npos ? address : "[" + address + "]") + ":" + std::to_string(entry.port);
    };
    bool changed = false;
    // The entry's servers: kept while their address is still given, out of the choice when not.
    for (std::size_t s = 0; s < g.servers.size(); ++s) {
        auto& server = g.servers[s];
        if (server.config != c) continue;
        const bool wanted = !server.address.empty() &&
                            std::find(addresses.begin(), addresses.end(), server.address) != addresses.end();
        if (server.active == wanted) continue;
        changed = true;
        server.active = wanted;
        if (!wanted) {
            if (server.series.healthy) g.metrics.drop_server_series(server.series);
            server.series = {};
            spdlog::info("upstream {}: {} no longer resolves to {}: server removed", g.config.name, entry.host,
                         server.address.empty() ? server.label : server.address);
        } else {
            ++server.generation;  // back: a new life (its old health check loop ends)
            server.series = g.metrics.server_series(g.config.name, server.label);
            server.series.healthy->Set(1);
            added.push_back(s);
            spdlog::info("upstream {}: {} resolves to {} again: server back", g.config.name, entry.host, server.address);
        }
    }
    // New addresses: a slot of their own, or one no longer used and idle (its connections then
    // belong to an older generation and are not reused).
    for (const auto& address : addresses) {
        const bool known = std::any_of(g.servers.begin(), g.servers.end(), [&](const Group::Server& x) {
            return x.config == c && x.address == address;
        });
        if (known) continue;
        auto spare = std::find_if(g.servers.begin(), g.servers.end(),
                                  [](const Group::Server& x) { return !x.active && x.outstanding == 0; });
        if (spare == g.servers.end()) {
            if (g.servers.size() >= kMaxServers) {
                spdlog::warn("upstream {}: {} resolves to more than {} addresses in all; {} left out", g.config.name,
                             entry.host, kMaxServers, address);
                continue;
            }
            g.servers.emplace_back();
            spare = g.servers.end() - 1;
        }
        const auto generation = spare->generation + 1;
        *spare = Group::Server{};
        spare->config = c;
        spare->address = address;
        spare->label = label_of(address);
        spare->generation = generation;
        spare->series = g.metrics.server_series(g.config.name, spare->label);
        spare->series.healthy->Set(1);
        added.push_back(static_cast<std::size_t>(spare - g.servers.begin()));
        changed = true;
        spdlog::info("upstream {}: {} resolves to {}: server added", g.config.name, entry.host, address);
    }
    if (changed && g.config.balance == config::Balance::ConsistentHash) g.build_ring();
    return added;
}

}  // namespace cachalot::upstream
