#pragma once
// Which server of an upstream a request goes to, shared by every worker: weighted round robin,
// least outstanding requests, or consistent hashing of the request's URL, over the servers
// that are not ejected. Passive health: a
// server that fails `eject_after` times in a row is ejected for `eject_for`, doubled each time
// it fails again right after coming back; a success readmits it for good.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::upstream {

/// The hash of a request's URL that places it on a consistent_hash upstream's ring.
std::uint64_t affinity_of(std::string_view url);

class Balancer {
public:
    using Clock = std::chrono::steady_clock;
    /// `upstreams` and `metrics` are kept by reference; `now` gives the time (a hand-moved one in tests).
    Balancer(const std::vector<config::Upstream>& upstreams, const metrics::Metrics& metrics,
             std::function<Clock::time_point()> now = Clock::now);
    ~Balancer();

    /// The server of upstream `u` the next request goes to, none of `skip`; nothing when every
    /// other server is ejected, or (then `*busy` is set) when the upstream has max_in_flight
    /// requests outstanding. The request counts as outstanding on it until release().
    /// `affinity` (a hash of the request's URL) places it on the ring of a consistent_hash
    /// upstream: the first server at or after it that takes requests.
    std::optional<std::size_t> pick(std::size_t u, std::span<const std::size_t> skip = {}, bool* busy = nullptr,
                                    std::uint64_t affinity = 0);
    /// How server `s` did: `failed` when it could not be reached, timed out, broke the response
    /// or answered 5xx. Failures in a row eject it; a success readmits it.
    void report(std::size_t u, std::size_t s, bool failed);
    /// A request picked for server `s` is over (its response read to the end, or dropped).
    void release(std::size_t u, std::size_t s);

    /// Whether server `s` of upstream `u` takes requests now (not ejected, not failing its
    /// active health checks).
    bool healthy(std::size_t u, std::size_t s) const;
    /// The verdict of server `s`'s active health checks: a server that fails them gets no
    /// requests until they pass again (whatever its passive state).
    void set_checked(std::size_t u, std::size_t s, bool passing);

    /// One server's state now (for the admin listener's GET /upstreams).
    struct ServerState {
        std::string server;  // host:port as configured
        unsigned weight = 1;
        bool healthy = true;
        bool checks_passing = true;  // its active health checks (true without any)
        std::size_t outstanding = 0;
        unsigned failures_in_row = 0;
        std::int64_t ejected_ms_left = 0;  // while ejected
    };
    std::vector<ServerState> state(std::size_t u) const;

private:
    struct Group;
    std::vector<std::unique_ptr<Group>> groups_;
    std::function<Clock::time_point()> now_;
};

}  // namespace cachalot::upstream
