#pragma once
// When each purge scope was last purged: a fixed table of slots, so that a purge costs one
// write however many entries it hits, and nothing is enumerated or indexed.
//
// A slot holds two words, each changed only by atomic max-merges, so that purges arriving in
// any order, twice, or from several processes at once leave the same state:
//   hard: the latest hard purge (Unix ms);
//   soft: the latest soft purge (Unix ms, high 42 bits) and how long before it the previous
//         one came (seconds, low 22 bits, saturated at about 48 days).
// Scopes (tags, prefixes, URLs, everything) are hashed into slots by the caller: two scopes
// sharing a slot purge each other's entries. That costs refetches, never a purged entry served.
//
// The table lives in the L1 file (every process on the host sees a purge at once, and it
// survives restarts) or, without an L1, in process memory.

#include "cachalot/store/store.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cachalot::store {

/// A slot's purge times, decoded. 0: never.
struct PurgeMarks {
    WallMillis hard = 0;
    WallMillis soft = 0;       // the latest soft purge
    WallMillis prev_soft = 0;  // the one before it (at most this late; 0: none known)
    bool operator==(const PurgeMarks&) const = default;
};

/// The two words of a slot as they lie in memory (shared memory included).
struct PurgeSlot {
    std::atomic<std::uint64_t> hard;
    std::atomic<std::uint64_t> soft;
};
static_assert(sizeof(PurgeSlot) == 16);

/// The table over memory someone else owns (a region of the L1 file, or a vector).
class PurgeTable {
public:
    /// Slots in every table: 65 536 (1 MiB). Slot 0 is "everything".
    static constexpr std::size_t kSlots = 1 << 16;
    /// `slots` points at kSlots zero-initialised (or previously used) slots, and `latest` at
    /// the word holding the latest purge of any slot (the lookup's fast path).
    PurgeTable(PurgeSlot* slots, std::atomic<std::int64_t>* latest) : slots_(slots), latest_(latest) {}

    PurgeMarks read(std::size_t slot) const;
    /// Merges purge times into a slot: each the max of what is there and what comes; for soft,
    /// the latest two distinct times of both.
    void merge(std::size_t slot, const PurgeMarks& marks);
    /// The latest purge of any slot: an entry fetched after it was purged by nothing.
    WallMillis latest() const { return latest_->load(std::memory_order_acquire); }

private:
    PurgeSlot* slots_;
    std::atomic<std::int64_t>* latest_;
};

/// A table in process memory: for a node without an L1, and for tests.
class MemoryPurgeTable {
public:
    MemoryPurgeTable();
    PurgeTable& table() { return table_; }

private:
    std::unique_ptr<PurgeSlot[]> slots_;
    std::atomic<std::int64_t> latest_{0};
    PurgeTable table_;
};

}  // namespace cachalot::store
