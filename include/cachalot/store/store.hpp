#pragma once
// What every cache storage tier shares: keys arrive with their hash, values are opaque bytes
// with an absolute wall-clock expiry. Stores never see HTTP types.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace cachalot::store {

using Hash = std::uint64_t;
/// Milliseconds since the Unix epoch (wall clock): expiries must mean the same in every process.
using WallMillis = std::int64_t;
using WallClock = std::function<WallMillis()>;

/// The hash a store expects for `key` (XXH3-64). Stable across processes and restarts.
Hash hash_key(std::string_view key);

/// The system wall clock in milliseconds.
WallMillis wall_now();

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
