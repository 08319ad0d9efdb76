#pragma once
// The cache's tiers behind one lookup: the shared-memory L1 first, then the Redis L2, whose
// hits back-fill L1 with the same expiry. Inserts write L1 at once and queue the L2 write, so
// a request never waits on Redis to store. Either tier may be absent.
//
// Invalidations reach every node: erase() drops the key here and in Redis, and publishes it on
// the L2's "invalidate" channel; every other node's listener drops it from its own L1.
//
// Purges (cache/purge.hpp) are times in the purge table, which lives in the L1 file: purge()
// writes one, and every lookup's entry is judged against them. With an L2, the table in Redis
// is the truth that every node agrees on: purge() also merges the time there and publishes it
// (the fast path); every node also re-reads Redis' table every cache.l2.purge_resync and pushes
// what it has that Redis lacks (a purge made while Redis was away), so a node that missed a
// message catches up within that interval once it reaches Redis.

#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/purge.hpp"
#include "cachalot/store/redis_store.hpp"
#include "cachalot/store/store.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace cachalot::cache {

class TieredCache {
public:
    /// `l1`: the shared-memory store in the daemon, any synchronous tier in tests. `purges`:
    /// the L1 file's purge table, or one in memory; it outlives this.
    TieredCache(store::Tier* l1, store::RedisStore* l2, store::PurgeTable* purges)
        : l1_(l1), l2_(l2), purges_(purges) {}

    bool enabled() const { return l1_ || l2_; }

    /// The entry stored under `key`, from the first tier that has an intact one. Garbage found
    /// in a tier is deleted there and counts as a miss. `l2_only` skips L1 (to see what another
    /// node just stored over an older local copy).
    boost::asio::awaitable<std::optional<Entry>> lookup(const std::string& key, bool l2_only = false);

    /// Stores encoded entry bytes until `expiry` (L1 now, L2 queued). False when no tier took it.
    bool insert(const std::string& key, const std::string& bytes, store::WallMillis expiry);

    /// Drops `key` from every tier here and from the other nodes' L1 (through the L2).
    void erase(const std::string& key);

    /// What the purges say of `entry`, stored for `url` (normalized).
    PurgeVerdict purge_verdict(const Entry& entry) const;

    /// Purges `scope` (purge_scope()) at `at`: every entry of it fetched at or before then is
    /// gone (hard) or stale (soft), on this host at once and, through the L2, on every node.
    void purge(std::string_view scope, PurgeMode mode, store::WallMillis at);

    /// Called with each message an application publishes on the purge channel (JSON).
    using AppPurgeHandler = std::function<void(std::string_view json)>;
    /// Subscribes to the other nodes' invalidations and purges and applies them here, keeps the
    /// purge table in step with Redis' every `resync`, and hands applications' purge messages
    /// to `on_app_purge`. Once per process (every worker shares the L1), before the workers
    /// start, on the worker whose L2 this cache uses.
    void listen_for_invalidations(AppPurgeHandler on_app_purge, std::chrono::milliseconds resync);

private:
    store::Tier* l1_;
    store::RedisStore* l2_;
    store::PurgeTable* purges_;
};

}  // namespace cachalot::cache
