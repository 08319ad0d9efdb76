#include "cachalot/upstream/balancer.hpp"

#include <spdlog/spdlog.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

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
    };
    Group(const config::Upstream& c, const metrics::UpstreamSeries& s) : config(c), series(s), servers(c.servers.size()) {
        if (c.balance == config::Balance::ConsistentHash) build_ring();
    }
    const config::Upstream& config;
    const metrics::UpstreamSeries& series;
    std::mutex mutex;  // (a handful of servers, a few instructions per pick)
    std::vector<Server> servers;
    std::size_t cursor = 0;  // where least-outstanding starts looking, for ties
    // consistent_hash: each server's points (kPointsPerWeight per unit of weight, placed by a
    // hash of its host:port and the point's number), sorted. A server that goes or comes moves
    // only the URLs of its own arcs (ketama's scheme, as nginx's `hash … consistent`).
    static constexpr unsigned kPointsPerWeight = 160;
    std::vector<std::pair<std::uint64_t, std::size_t>> ring;

    void build_ring() {
        for (std::size_t s = 0; s < config.servers.size(); ++s) {
            const auto label = config.servers[s].label();
            for (unsigned i = 0; i < kPointsPerWeight * config.servers[s].weight; ++i) {
                const auto point = label + "#" + std::to_string(i);
                ring.emplace_back(XXH3_64bits(point.data(), point.size()), s);
            }
        }
        std::sort(ring.begin(), ring.end());
    }

    const metrics::ServerSeries* series_of(std::size_t s) const {
        return s < series.servers.size() ? &series.servers[s] : nullptr;
    }
};

std::uint64_t affinity_of(std::string_view url) { return XXH3_64bits(url.data(), url.size()); }

Balancer::Balancer(const std::vector<config::Upstream>& upstreams, const metrics::Metrics& metrics,
                   std::function<Clock::time_point()> now)
    : now_(std::move(now)) {
    for (std::size_t u = 0; u < upstreams.size(); ++u) {
        groups_.push_back(std::make_unique<Group>(upstreams[u], metrics.upstream(u)));
    }
}

Balancer::~Balancer() = default;

std::optional<std::size_t> Balancer::pick(std::size_t u, std::span<const std::size_t> skip, bool* busy,
                                          std::uint64_t affinity) {
    auto& g = *groups_[u];
    const auto now = now_();
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
        if (server.ejected && now >= server.ejected_until) {
            server.ejected = false;  // back on probation: its next failure ejects it again
            if (auto* m = g.series_of(s)) m->healthy->Set(server.checks_failing ? 0 : 1);
        }
        return !server.ejected && !server.checks_failing && std::find(skip.begin(), skip.end(), s) == skip.end();
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
            if (!chosen || g.servers[s].outstanding * g.config.servers[*chosen].weight <
                               g.servers[*chosen].outstanding * g.config.servers[s].weight)
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
            server.current += static_cast<int>(g.config.servers[s].weight);
            total += static_cast<int>(g.config.servers[s].weight);
            if (!chosen || server.current > g.servers[*chosen].current) chosen = s;
        }
        if (chosen) g.servers[*chosen].current -= total;
    }
    if (!chosen) return std::nullopt;
    ++g.servers[*chosen].outstanding;
    if (auto* m = g.series_of(*chosen)) m->requests->Increment();
    return chosen;
}

void Balancer::report(std::size_t u, std::size_t s, bool failed) {
    auto& g = *groups_[u];
    const auto now = now_();
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
    if (g.config.eject_after == 0 || g.servers.size() == 1 || server.ejected) return;
    ++server.failures;
    // Back from an ejection and failing again: out at once, for twice as long.
    if (server.failures < g.config.eject_after && server.ejections == 0) return;
    const auto factor = 1u << std::min(server.ejections, 5u);
    server.ejected = true;
    server.ejected_until = now + g.config.eject_for * factor;
    server.failures = 0;
    ++server.ejections;
    if (m) {
        m->healthy->Set(0);
        m->ejections->Increment();
    }
    spdlog::warn("upstream {}: server {} ejected for {} ms after failing", g.config.name, g.config.servers[s].label(),
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
    spdlog::warn("upstream {}: server {} {} its health checks", g.config.name, g.config.servers[s].label(),
                 passing ? "passes" : "fails");
}

std::vector<Balancer::ServerState> Balancer::state(std::size_t u) const {
    auto& g = *groups_[u];
    const auto now = now_();
    std::lock_guard lock(g.mutex);
    std::vector<ServerState> out;
    for (std::size_t s = 0; s < g.servers.size(); ++s) {
        const auto& server = g.servers[s];
        const bool ejected = server.ejected && now < server.ejected_until;
        out.push_back({g.config.servers[s].label(), g.config.servers[s].weight, !ejected && !server.checks_failing,
                       !server.checks_failing, server.outstanding,
                       server.failures,
                       ejected ? std::chrono::duration_cast<std::chrono::milliseconds>(server.ejected_until - now).count()
                               : 0});
    }
    return out;
}

}  // namespace cachalot::upstream
