#pragma once
// Which server of an upstream a request goes to, shared by every worker: weighted round robin,
// least outstanding requests, or consistent hashing of the request's URL, over the servers
// that are not ejected.
//
// A server is one address: a configured entry given by address is one server; one given by
// name is one server (resolved at each connection) until the name is resolved (resolved()),
// and then one per address it resolves to, each with the entry's weight. Servers are numbered
// for good: an address that goes away keeps its number, out of the choice, and its number may
// later go to a new address with a new generation. Passive health: a
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
    /// `now` gives the time (a hand-moved one in tests).
    Balancer(const std::vector<config::Upstream>& upstreams, const metrics::Metrics& metrics,
             std::function<Clock::time_point()> now = Clock::now);
    /// The balancer of a reloaded configuration: upstreams that did not change keep their state
    /// (servers and their addresses, ejections, health, requests outstanding), shared with
    /// `previous`; the others start afresh.
    Balancer(const Balancer& previous, const std::vector<config::Upstream>& upstreams, const metrics::Metrics& metrics);
    ~Balancer();
    Balancer(const Balancer&) = delete;
    Balancer& operator=(const Balancer&) = delete;

    /// At most this many servers per upstream, addresses of every entry together.
    static constexpr std::size_t kMaxServers = 256;

    /// The server of upstream `u` the next request goes to, none of `skip`; nothing when every
    /// other server is ejected, or (then `*busy` is set) when the upstream has max_in_flight
    /// requests outstanding. The request counts as outstanding on it until release().
    /// `affinity` (a hash of the request's URL) places it on the ring of a consistent_hash
    /// upstream: the first server at or after it that takes requests. `*generation` (when
    /// given) gets the server's generation (see target()).
    std::optional<std::size_t> pick(std::size_t u, std::span<const std::size_t> skip = {}, bool* busy = nullptr,
                                    std::uint64_t affinity = 0, std::uint64_t* generation = nullptr);
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

    /// Where server `s` of upstream `u` is.
    struct Target {
        std::size_t config = 0;        // its entry in the upstream's servers (name, port, weight)
        std::string address;           // the address to connect to; empty: the entry's host, resolved
        std::string label;             // address:port (the entry's host:port until resolved)
        std::uint64_t generation = 0;  // changes when the number goes to another address
        bool active = true;            // false: its address is gone (its name no longer gives it)
    };
    Target target(std::size_t u, std::size_t s) const;
    /// How many servers upstream `u` has numbered so far (active or not).
    std::size_t size(std::size_t u) const;

    /// The addresses entry `c` of upstream `u` resolves to now: each is a server from now on,
    /// the entry's servers at other addresses get no more requests. An empty list changes
    /// nothing (the last addresses stay). Returns the servers that are new or back.
    std::vector<std::size_t> resolved(std::size_t u, std::size_t c, const std::vector<std::string>& addresses);

    /// Counts one active health check of server `s`.
    void record_check(std::size_t u, std::size_t s, bool passed);

    /// One server's state now (for the admin listener's GET /upstreams).
    struct ServerState {
        std::string server;  // address:port (host:port until its name is resolved)
        std::string host;    // the entry's host as configured
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
    std::vector<std::shared_ptr<Group>> groups_;
    std::function<Clock::time_point()> now_;
};

}  // namespace cachalot::upstream
