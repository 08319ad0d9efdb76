#pragma once
// The shared-memory file's layout. Everything here lives in the mapping: offsets, never
// pointers; fixed-width fields; changing any of it means bumping kSchemaVersion.
//
//   [Superblock 4 KiB][purge table 1 MiB][ShardHeader × shards][per shard: SegmentInfo × segments]
//   [per shard: index buckets][per shard: ghost table][per shard: segments (data)]
//
// Index: per shard, buckets of 8 slots (one cache line). A slot is 16 bits of hash tag, 2 bits
// of hit count (S3-FIFO's frequency, bumped by readers with a compare-and-swap) and 46 bits of
// item offset (+1, so 0 is empty). The full hash and key live in the item header and are
// compared on lookup.
// Purge table: store::PurgeSlot × PurgeTable::kSlots, changed only by atomic max-merges (see
// include/cachalot/store/purge_table.hpp); it survives rebuilds of the entries.
// Readers take no lock: a shard's version is odd while a writer changes it, and a reader that
// sees it odd or changed retries, then falls back to the lock (a seqlock).
// Segments: fixed size, items appended back to back; each segment is on one list: free,
// small FIFO or main FIFO (head = oldest).

#include "cachalot/store/purge_table.hpp"

#include <pthread.h>

#include <atomic>
#include <type_traits>
#include <cstdint>

namespace cachalot::store::shm {

inline constexpr std::uint64_t kMagic = 0x544f4c4148434143ull;  // "CACHALOT"
inline constexpr std::uint64_t kBuildingMagic = 0x444c495542414843ull;  // "CHABUILD": a build in progress
inline constexpr std::uint32_t kSchemaVersion = 3;
inline constexpr std::uint32_t kItemMagic = 0xC0FFEE11u;
inline constexpr std::uint32_t kNone = 0xffffffffu;
inline constexpr std::size_t kSlotsPerBucket = 8;
inline constexpr std::size_t kDataBytesPerSlot = 256;  // index sized for items of 256 B on average
inline constexpr std::size_t kGhostBytesPerEntry = 512;
inline constexpr std::size_t kMaxKeySize = 8 * 1024;
inline constexpr std::uint8_t kMaxFreq = 3;

// Where the purge table and the shard headers start.
inline constexpr std::size_t kPurgeTableAt = 4096;
inline constexpr std::size_t kShardHeadersAt = kPurgeTableAt + PurgeTable::kSlots * sizeof(PurgeSlot);

struct Superblock {
    std::uint64_t magic;
    std::uint32_t schema_version;
    std::uint32_t shard_count;
    std::uint64_t abi_hash;
    std::uint64_t file_size;
    std::uint64_t max_object_size;
    std::uint64_t segment_size;
    std::uint64_t segments_per_shard;
    std::uint64_t buckets_per_shard;
    std::uint64_t ghost_per_shard;
    std::uint64_t geometry_checksum;  // over every field above
    std::atomic<std::uint32_t> clean_shutdown;
    std::uint32_t reserved;
    std::atomic<std::uint64_t> generation;  // bumped at every build
    std::atomic<std::int64_t> purge_latest;  // the latest purge in the purge table (PurgeTable::latest)
};

struct alignas(64) ShardCounters {
    std::atomic<std::uint64_t> items, bytes_used, puts, evictions, expirations, refused_too_large, lock_recoveries,
        corrupt_dropped;
};

struct FifoList {
    std::uint32_t head;   // oldest
    std::uint32_t tail;   // newest: where appends go
    std::uint32_t count;
    std::uint32_t reserved;
};

struct alignas(64) ShardHeader {
    pthread_mutex_t mutex;               // robust, process-shared; taken by writers
    std::atomic<std::uint64_t> version;  // odd while a writer changes the shard: a dead owner left it torn
    FifoList free_list, small, main;
    ShardCounters counters;
};

struct SegmentInfo {
    std::uint32_t next;          // next segment on the same list (towards the tail)
    std::uint32_t used;          // bytes of items written
    std::uint32_t list;          // 0 free, 1 small, 2 main
    std::uint32_t reserved;
};
enum ListId : std::uint32_t { kFree = 0, kSmall = 1, kMain = 2 };

struct ItemHeader {
    std::uint32_t magic;
    std::uint32_t key_size;
    std::uint32_t value_size;
    std::uint8_t dead;  // removed from the index; space reclaimed with the segment
    std::uint8_t reserved[3];
    std::uint64_t hash;
    std::int64_t expiry;
    std::uint64_t checksum;  // over hash, expiry, sizes, key and value
};

static_assert(sizeof(ItemHeader) == 40);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::is_trivially_copyable_v<ItemHeader>);

}  // namespace cachalot::store::shm
