#pragma once
// What every cache storage tier shares: keys arrive with their hash, values are opaque bytes
// with an absolute wall-clock expiry. Stores never see HTTP types.

#include "cachalot/core/clock.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachalot::store {

using Hash = std::uint64_t;
using core::WallClock;
using core::WallMillis;
using core::wall_now;

/// The hash a store expects for `key` (XXH3-64). Stable across processes and restarts.
Hash hash_key(std::string_view key);

/// A synchronous tier (the L1, and the reference store): never blocks on I/O.
class Tier {
public:
    virtual ~Tier() = default;
    /// A copy of the value stored for `key`, if present and not expired.
    virtual std::optional<std::string> find(Hash hash, std::string_view key) = 0;
    /// Stores `value` under `key` until `expiry`, replacing any previous value. False when the
    /// tier refuses it (too large, already expired).
    virtual bool put(Hash hash, std::string_view key, std::string_view value, WallMillis expiry) = 0;
    /// Removes `key`; true if it was there.
    virtual bool erase(Hash hash, std::string_view key) = 0;
};

/// Counters a store exposes for metrics. Totals since the store was created (for the shared-
/// memory store: since the segment was built, across processes and restarts).
struct StoreStats {
    std::uint64_t items = 0;            // live entries
    std::uint64_t bytes_used = 0;       // bytes of live entries, overhead included
    std::uint64_t capacity_bytes = 0;   // bytes available for entries
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t puts = 0;
    std::uint64_t evictions = 0;        // live entries removed to make room
    std::uint64_t expirations = 0;      // expired entries removed
    std::uint64_t refused_too_large = 0;
    std::uint64_t lock_recoveries = 0;  // locks recovered from a dead owner
    std::uint64_t corrupt_dropped = 0;  // entries that failed validation and were dropped
};

}  // namespace cachalot::store
