#pragma once
// The Redis L2: one RedisStore per worker thread, driving a few hiredis connections per Redis
// node from that worker's io_context. Shared by every Cachalot node that points at the same
// Redis deployment: one server, a primary under Sentinel, or a Redis Cluster.
//
// Bytes from Redis are not trusted: a value is an envelope (magic, absolute expiry) around the
// caller's bytes, and anything that is not a whole envelope is dropped and deleted. Every
// failure — refused connection, error reply, a reply slower than command_timeout — is a miss,
// never an error for the client. Consecutive failures of one Redis node open that node's breaker:
// for breaker_backoff, lookups of its keys skip Redis and writes to it are dropped; then one
// request probes, and the breaker closes when the node answers.
//
// Keys: key_prefix, then a hash tag of the key's group, then the key (redis_key). A key's group
// is its part before the first 0x1f: a URL's primary key is the group of its Vary variants and
// its fetch lock, so in a Redis Cluster all of them live in one slot, on one node.

#include "cachalot/config/config.hpp"
#include "cachalot/store/purge_table.hpp"
#include "cachalot/store/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace cachalot::store {

/// The Redis key of `key`: key_prefix + "{" + 16 hex digits of the hash of the key's group
/// + "}" + key.
std::string redis_key(std::string_view key_prefix, std::string_view key);
/// Redis Cluster's hash slot of a Redis key (CRC16 of its hash tag, modulo 16384).
unsigned hash_slot(std::string_view redis_key);
inline constexpr unsigned kHashSlots = 16384;

/// Counters of one Redis node ("host:port"), shared by every worker's store.
struct RedisNodeCounters {
    std::atomic<std::uint64_t> commands{0}, errors{0}, moved{0}, ask{0}, refreshes{0}, failovers{0};
    std::atomic<std::int64_t> breakers_open{0};  // workers whose breaker for this node is open
};

/// The Redis nodes a process has talked to, with their counters (one registry per process, so
/// a failover is counted once however many workers see it).
class RedisNodes {
public:
    RedisNodeCounters& node(const std::string& name);
    /// A Redis Cluster's roles as a slot map gave them: a node seen as a replica that now serves
    /// slots has been promoted (a failover, counted on it).
    void cluster_roles(const std::vector<std::string>& primaries, const std::vector<std::string>& replicas);
    /// Sentinel's answer: a primary other than the last one is a failover, counted on it.
    void sentinel_primary(const std::string& name);
    std::vector<std::pair<std::string, const RedisNodeCounters*>> list() const;

private:
    struct Known {
        RedisNodeCounters counters;
        enum class Role { Unknown, Primary, Replica } role = Role::Unknown;
    };
    Known& known(const std::string& name);  // with mutex_ held
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Known>> nodes_;
    std::string sentinel_primary_;
};

/// The configuration's cache.l2 (config::L2Cache), and what only a running process supplies.
struct RedisOptions : config::L2Cache {
    WallClock clock = wall_now;
    /// Called with the duration of every command that got an answer, in seconds.
    std::function<void(double)> observe_latency;
    /// Where per-node counters go (one per process); null: a registry of the store's own.
    std::shared_ptr<RedisNodes> nodes;
};

/// Counters of one RedisStore, read at scrape time (summed over workers).
struct RedisCounters {
    std::atomic<std::uint64_t> hits{0}, misses{0}, errors{0}, timeouts{0}, corrupt_dropped{0}, expirations{0};
    std::atomic<std::uint64_t> puts{0}, write_drops{0}, refused_too_large{0}, breaker_opened{0};
    std::atomic<std::int64_t> queue_depth{0};
    std::atomic<std::int64_t> breakers_open{0};  // nodes whose breaker is open
};

class RedisStore {
public:
    RedisStore(boost::asio::any_io_executor executor, RedisOptions options);
    ~RedisStore();
    RedisStore(const RedisStore&) = delete;
    RedisStore& operator=(const RedisStore&) = delete;

    /// The value stored under `key`, or nothing (absent, expired, garbage, Redis failing).
    boost::asio::awaitable<std::optional<std::string>> find(std::string_view key);
    /// With the absolute expiry the value was stored with.
    struct Found {
        std::string value;
        WallMillis expiry = 0;
    };
    boost::asio::awaitable<std::optional<Found>> find_with_expiry(std::string_view key);

    /// Stores and waits for Redis' answer: false when refused (too large, expired) or failed.
    boost::asio::awaitable<bool> put(std::string_view key, std::string_view value, WallMillis expiry);
    /// Queues the write and returns at once; false when it was dropped (queue full, breaker
    /// open, too large). Writes leave in order, pipelined.
    bool put_later(std::string_view key, std::string_view value, WallMillis expiry);

    boost::asio::awaitable<bool> erase(std::string_view key);
    void erase_later(std::string_view key);
    /// Deletes a value the caller found to be garbage, and counts it.
    void discard(std::string_view key);

    /// SET NX PX: true when this caller now holds `name` for `ttl`. False when another holder
    /// has it, and when Redis is failing (the caller then proceeds without the lock).
    boost::asio::awaitable<std::optional<bool>> try_lock(std::string_view name, std::string_view token,
                                                         std::chrono::milliseconds ttl);
    /// Whether someone holds `name` (nothing when Redis is failing).
    boost::asio::awaitable<std::optional<bool>> is_locked(std::string_view name);
    /// Releases `name` if `token` still holds it.
    void unlock_later(std::string_view name, std::string_view token);

    /// Queues a PUBLISH of `message` on `channel` (key_prefix added), in order with the writes
    /// of `about` (a key) queued before it: it goes out on the connection to that key's node
    /// (any node of a cluster broadcasts it to all).
    void publish_later(std::string_view channel, std::string_view message, std::string_view about = {});
    /// Keeps a subscription to `channels` (key_prefix added) on a connection of its own,
    /// re-subscribing within a second after Redis comes back; `on_message` gets the channel
    /// (without key_prefix) and the payload, on this store's executor.
    void subscribe(std::vector<std::string> channels,
                   std::function<void(std::string_view channel, std::string_view payload)> on_message);

    /// The purge table in Redis (the hash "purges" and its change counter "purges:version"):
    /// queues a max-merge of `marks` into `slot`, as PurgeTable::merge does.
    void merge_purge_later(std::size_t slot, const PurgeMarks& marks);
    /// Redis' purge table: its version, and every slot's marks unless the version is still
    /// `known_version` (then only the version). Nothing when Redis fails.
    struct Purges {
        std::string version;
        std::vector<std::pair<std::size_t, PurgeMarks>> slots;
        bool complete = false;  // slots holds the whole table
    };
    boost::asio::awaitable<std::optional<Purges>> read_purges(std::string known_version);

    /// Resumes once every write queued so far has been answered (or dropped).
    boost::asio::awaitable<void> flush();

    boost::asio::any_io_executor executor() const;

    StoreStats stats() const;
    const RedisCounters& counters() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace cachalot::store
