#pragma once
// Which Redis node serves a key, for one worker: one server (cache.l2.address), the primary
// Sentinel names (cache.l2.sentinel), or the node a Redis Cluster's slot map gives the key's
// slot (cache.l2.cluster). Every node has its own connections and its own breaker.
//
// Cluster: the slot map comes from CLUSTER SLOTS, asked of any node that answers. It is read
// again every topology_refresh, at once (at most every 100 ms) after a MOVED or a CLUSTERDOWN,
// and every 250 ms while a node's breaker is open, which is how a promoted replica is found.
// MOVED and ASK are followed (ASK with ASKING first, on the same connection), TRYAGAIN is tried
// again after a pause; at most kMaxRedirects times per command.
//
// Sentinel: the primary comes from SENTINEL get-master-addr-by-name (the sentinels in turn), is
// checked with ROLE on every new connection, and is replaced as soon as a sentinel publishes
// +switch-master. It is asked again every topology_refresh, every 250 ms while the primary's
// breaker is open, and at once when ROLE says a node is not the primary.

#include "cachalot/store/redis_store.hpp"
#include "store/redis/connection.hpp"

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cachalot::store::redis {

/// One Redis server, as one worker uses it.
struct Node {
    using SteadyClock = std::chrono::steady_clock;
    Node(const net::any_io_executor& ex, Endpoint ep, const RedisOptions& opt, RedisNodeCounters& stats,
         std::function<void()> on_not_primary);

    Endpoint endpoint;
    std::string name;  // "host:port", the metrics' node label
    RedisNodeCounters& stats;
    std::vector<std::unique_ptr<Connection>> pool;
    std::size_t next = 0;
    // Breaker: closed → (failure_threshold consecutive failures) → open for breaker_backoff →
    // one probe → closed on success, open again on failure.
    unsigned consecutive_failures = 0;
    SteadyClock::time_point open_until{};
    bool open = false, probing = false;

    Connection& connection() { return *pool[next++ % pool.size()]; }
};

class Topology : public std::enable_shared_from_this<Topology> {
public:
    static constexpr int kMaxRedirects = 5;
    using SteadyClock = std::chrono::steady_clock;

    Topology(net::any_io_executor ex, const RedisOptions& opt, RedisCounters& counters);
    /// Starts following the deployment (slot map, Sentinel): call once, after construction.
    void start();
    void close();

    /// The node serving the Redis key `rkey` when its breaker lets a command through; else null
    /// (and the caller treats it as a miss, or drops the write).
    Node* route(std::string_view rkey);
    /// Resumes once the slot map (or Sentinel's primary) has been read for the first time, or
    /// after connect_timeout + command_timeout: commands before that would have nowhere to go.
    net::awaitable<void> ready();
    /// Whether ready() would return at once.
    bool known() const { return learned_ || mode_ == Mode::Single; }

    /// Whether a write of `rkey` could be sent now (its node's breaker is not open), without
    /// taking a half-open breaker's probe.
    bool writable(std::string_view rkey) const;

    /// Sends a command about `rkey` to `node` and waits for the answer (a redirect followed).
    net::awaitable<Reply> exec(Node& node, const std::vector<std::string_view>& args);
    /// The end of a command sent on `conn` to `node` at `start`: accounts for the reply, follows a
    /// redirect (sending `args` again elsewhere), and returns the final reply.
    net::awaitable<Reply> settle(Node& node, Connection& conn, Reply reply, SteadyClock::time_point start,
                                 const std::vector<std::string_view>& args);

    /// A node to subscribe on: the server, the primary, or a cluster node that is not failing
    /// (the next one each time, so a dead node's subscriber moves on).
    std::optional<Endpoint> subscription_endpoint();

private:
    enum class Mode { Single, Sentinel, Cluster };

    Node& node(const Endpoint& ep);
    bool allow(Node& n);
    void record(Node& n, bool ok);
    void account(Node& n, Connection& conn, const Reply& r, SteadyClock::time_point start);
    bool failing() const;
    /// A node that no longer serves (replaced by a failover, out of the slot map): its breaker,
    /// open or not, no longer counts.
    void retire(Node& n);
    /// Wakes the refresh loop (at most every 100 ms).
    void wake();

    static net::awaitable<void> follow(std::shared_ptr<Topology> self);
    net::awaitable<bool> refresh_cluster();
    net::awaitable<bool> refresh_sentinel();
    static net::awaitable<void> watch_sentinels(std::shared_ptr<Topology> self);
    void set_primary(const Endpoint& ep, const char* why);
    void learned();

    net::any_io_executor ex_;
    const RedisOptions& opt_;
    RedisCounters& counters_;
    std::shared_ptr<RedisNodes> nodes_;
    Mode mode_ = Mode::Single;
    std::map<std::string, std::unique_ptr<Node>> known_;
    Node* primary_ = nullptr;                   // Single, Sentinel
    std::vector<Node*> slots_;                  // Cluster: kHashSlots owners (null: unknown)
    std::vector<Endpoint> seeds_;               // Cluster seeds, or the sentinels
    std::vector<std::unique_ptr<Connection>> sentinels_;
    std::unique_ptr<Connection> sentinel_watch_;
    Connection::MessageHandler on_switch_;
    std::size_t next_subscription_ = 0;
    bool learned_ = false;  // the slot map or the primary has been read once
    std::vector<std::shared_ptr<Pending>> ready_waiters_;
    net::steady_timer refresh_timer_;
    SteadyClock::time_point last_refresh_{};
    bool closed_ = false;
};

}  // namespace cachalot::store::redis
