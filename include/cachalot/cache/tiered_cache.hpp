#pragma once
// The cache's tiers behind one lookup: the shared-memory L1 first, then the Redis L2, whose
// hits back-fill L1 with the same expiry. Inserts write L1 at once and queue the L2 write, so
// a request never waits on Redis to store. Either tier may be absent.
//
// Invalidations reach every node: erase() drops the key here and in Redis, and publishes it on
// the L2's "invalidate" channel; every other node's listener drops it from its own L1.
//
// Purges (cache/purge.hpp) are times in the purge table, which lives in the L1 file: purge()
// writes one, and every lookup's entry is judged against them.

#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/purge.hpp"
#include "cachalot/store/redis_store.hpp"
#include "cachalot/store/store.hpp"

#include <boost/asio/awaitable.hpp>

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
    PurgeVerdict purge_verdict(const Entry& entry, std::string_view url) const;

    /// Purges `scope` (purge_scope()) at `at`: every entry of it fetched at or before then is
    /// gone (hard) or stale (soft), on this host.
    void purge(std::string_view scope, PurgeMode mode, store::WallMillis at);

    /// Subscribes to the other nodes' invalidations and applies them to L1. Once per process
    /// (every worker shares the L1), before the workers start.
    void listen_for_invalidations();

private:
    store::Tier* l1_;
    store::RedisStore* l2_;
    store::PurgeTable* purges_;
};

}  // namespace cachalot::cache
