#include "cachalot/store/shm_store.hpp"

#include "store/shm/layout.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace cachalot::store {
namespace {

using namespace shm;

// Thrown by the helpers when shard metadata is found inconsistent (garbage in the file): the
// public call clears that shard and answers as for a miss.
struct CorruptShard {};

constexpr std::uint64_t kOffsetMask = (1ull << 46) - 1;
constexpr int kFreqShift = 46;

std::uint64_t fastrange(std::uint64_t hash, std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(hash) * n) >> 64);
}

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

std::size_t item_size(std::size_t key, std::size_t value) { return align_up(sizeof(ItemHeader) + key + value, 8); }

// Over the header's identity (hash, expiry, sizes) and the key and value, which lie back to back
// right after the header.
std::uint64_t item_checksum(const ItemHeader& h, const void* key_and_value) {
    const std::uint64_t seed = h.hash ^ static_cast<std::uint64_t>(h.expiry) ^
                               (static_cast<std::uint64_t>(h.key_size) << 32 | h.value_size);
    return XXH3_64bits_withSeed(key_and_value, std::size_t{h.key_size} + h.value_size, seed);
}

std::uint64_t abi_hash() {
    const std::uint64_t facts[] = {kSchemaVersion,
                                   sizeof(Superblock),
                                   sizeof(ShardHeader),
                                   sizeof(SegmentInfo),
                                   sizeof(ItemHeader),
                                   sizeof(pthread_mutex_t),
                                   alignof(ShardHeader),
                                   kSlotsPerBucket,
                                   kDataBytesPerSlot,
                                   kGhostBytesPerEntry,
                                   kMaxKeySize,
                                   0x58584833 /* XXH3 for hashes and checksums */};
    return XXH3_64bits(facts, sizeof facts);
}

struct Geometry {
    std::size_t file_size = 0;
    std::size_t max_object_size = 0;
    std::size_t segment_size = 0;
    std::size_t shards = 0;
    std::size_t segments = 0;  // per shard
    std::size_t buckets = 0;   // per shard
    std::size_t ghost = 0;     // per shard
    std::size_t shard_headers_at = 0, segment_infos_at = 0, index_at = 0, ghost_at = 0, data_at = 0, end = 0;

    static constexpr std::size_t kPurgeAt = kPurgeTableAt;
    static constexpr std::size_t kPurgeBytes = kShardHeadersAt - kPurgeTableAt;

    void place() {
        shard_headers_at = kShardHeadersAt;
        segment_infos_at = shard_headers_at + shards * sizeof(ShardHeader);
        index_at = align_up(segment_infos_at + shards * segments * sizeof(SegmentInfo), 64);
        ghost_at = index_at + shards * buckets * kSlotsPerBucket * sizeof(std::uint64_t);
        data_at = align_up(ghost_at + shards * ghost * sizeof(std::uint32_t), 4096);
        end = data_at + shards * segments * segment_size;
    }

    static Geometry compute(std::size_t size, std::size_t max_object_size) {
        Geometry g;
        g.file_size = size;
        g.max_object_size = max_object_size;
        g.segment_size = std::max<std::size_t>(
            256 * 1024, std::bit_ceil(max_object_size + sizeof(ItemHeader) + kMaxKeySize + 8));
        const std::size_t fixed = 8192 + kPurgeBytes;
        const std::size_t avail = size > fixed ? size - fixed : 0;
        g.shards = 64;
        while (g.shards > 1 && avail / g.shards < 16 * g.segment_size) g.shards /= 2;
        const std::size_t per_segment = g.segment_size + sizeof(SegmentInfo) +
                                        g.segment_size / kDataBytesPerSlot * sizeof(std::uint64_t) +
                                        g.segment_size / kGhostBytesPerEntry * sizeof(std::uint32_t);
        const std::size_t per_shard = avail / g.shards;
        g.segments = per_shard > sizeof(ShardHeader) ? (per_shard - sizeof(ShardHeader)) / per_segment : 0;
        for (;; --g.segments) {
            if (g.segments < 4)
                throw std::runtime_error("a shared-memory cache of " + std::to_string(size) +
                                         " bytes cannot hold objects of " + std::to_string(max_object_size) +
                                         " bytes: it needs at least " +
                                         std::to_string(8 * g.segment_size + 64 * 1024 + kPurgeBytes) + " bytes");
            g.buckets = std::max<std::size_t>(1, g.segments * g.segment_size / kDataBytesPerSlot / kSlotsPerBucket);
            g.ghost = std::max<std::size_t>(1, g.segments * g.segment_size / kGhostBytesPerEntry);
            g.place();
            if (g.end <= size) break;
        }
        return g;
    }
};

}  // namespace

struct ShmStore::Impl {
    Options opt;
    Geometry g;
    int fd = -1;
    std::uint8_t* base = nullptr;
    OpenState state = OpenState::Created;

    // ---- addressing -----------------------------------------------------------------------

    Superblock& sb() const { return *reinterpret_cast<Superblock*>(base); }
    PurgeSlot* purge_slots() const { return reinterpret_cast<PurgeSlot*>(base + Geometry::kPurgeAt); }
    ShardHeader& shard(std::size_t i) const {
        return reinterpret_cast<ShardHeader*>(base + g.shard_headers_at)[i];
    }
    SegmentInfo* segments(std::size_t i) const {
        return reinterpret_cast<SegmentInfo*>(base + g.segment_infos_at) + i * g.segments;
    }
    std::uint64_t* index(std::size_t i) const {
        return reinterpret_cast<std::uint64_t*>(base + g.index_at) + i * g.buckets * kSlotsPerBucket;
    }
    std::uint64_t* bucket(std::size_t i, std::uint64_t hash) const {
        return index(i) + fastrange(std::rotl(hash, 21), g.buckets) * kSlotsPerBucket;
    }
    std::uint32_t& ghost(std::size_t i, std::uint64_t hash) const {
        auto* table = reinterpret_cast<std::uint32_t*>(base + g.ghost_at) + i * g.ghost;
        return table[fastrange(std::rotl(hash, 43), g.ghost)];
    }
    std::uint8_t* data(std::size_t i) const { return base + g.data_at + i * g.segments * g.segment_size; }
    std::size_t shard_of(std::uint64_t hash) const { return fastrange(hash, g.shards); }
    static std::uint16_t tag_of(std::uint64_t hash) { return static_cast<std::uint16_t>(hash); }
    static std::uint64_t make_slot(std::uint64_t hash, std::uint64_t offset, unsigned freq = 0) {
        return (static_cast<std::uint64_t>(tag_of(hash)) << 48) | (static_cast<std::uint64_t>(freq) << kFreqShift) |
               (offset + 1);
    }
    static std::uint64_t slot_offset(std::uint64_t slot) { return (slot & kOffsetMask) - 1; }
    static unsigned slot_freq(std::uint64_t slot) { return static_cast<unsigned>(slot >> kFreqShift) & 3u; }
    static bool slot_tag_is(std::uint64_t slot, std::uint64_t hash) { return (slot >> 48) == tag_of(hash); }

    // The item at `offset` of shard i when its header and extent lie inside the written part of
    // a segment on a list, else null. Checksums are checked separately (they cost a pass over
    // the value).
    ItemHeader* item_at(std::size_t i, std::uint64_t offset) const {
        if (offset >= g.segments * g.segment_size || offset % 8 != 0) return nullptr;
        const auto seg = offset / g.segment_size;
        const auto within = offset % g.segment_size;
        const auto& info = segments(i)[seg];
        if (info.list == kFree || info.used > g.segment_size || within + sizeof(ItemHeader) > info.used)
            return nullptr;
        auto* h = reinterpret_cast<ItemHeader*>(data(i) + offset);
        if (h->magic != kItemMagic || h->key_size > kMaxKeySize || h->value_size > g.max_object_size) return nullptr;
        if (within + item_size(h->key_size, h->value_size) > info.used) return nullptr;
        return h;
    }
    static const char* key_of(const ItemHeader* h) { return reinterpret_cast<const char*>(h + 1); }
    static const char* value_of(const ItemHeader* h) { return key_of(h) + h->key_size; }
    static bool checksum_ok(const ItemHeader* h) { return item_checksum(*h, h + 1) == h->checksum; }

    // ---- locking --------------------------------------------------------------------------

    static void init_mutex(pthread_mutex_t* m) {
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(m, &attr);
        pthread_mutexattr_destroy(&attr);
    }

    // Holds shard i's lock. A lock whose owner died is taken over: if the owner was half-way
    // through a change (dirty), the shard is cleared, since its index and lists may disagree.
    class Guard {
    public:
        Guard(Impl& impl, std::size_t i) : impl_(impl), i_(i) {
            auto& s = impl.shard(i);
            int rc = pthread_mutex_lock(&s.mutex);
            if (rc == EOWNERDEAD) {
                s.counters.lock_recoveries.fetch_add(1, std::memory_order_relaxed);
                if (s.version.load() & 1) {
                    impl.clear_shard(i);
                    s.version.fetch_add(1);
                }
                pthread_mutex_consistent(&s.mutex);
                rc = 0;
            }
            locked_ = rc == 0;
        }
        ~Guard() {
            if (locked_) pthread_mutex_unlock(&impl_.shard(i_).mutex);
        }
        bool locked() const { return locked_; }

    private:
        Impl& impl_;
        std::size_t i_;
        bool locked_ = false;
    };

    // Marks shard i as being changed for as long as it lives (the seqlock's write side): its
    // version is odd meanwhile, so readers retry and a recoverer knows the shard may be torn.
    struct Dirty {
        ShardHeader& s;
        explicit Dirty(ShardHeader& sh) : s(sh) {
            s.version.store(s.version.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_release);
        }
        ~Dirty() { s.version.store(s.version.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
    };

    // ---- lists ----------------------------------------------------------------------------

    void check_segment(std::uint32_t seg) const {
        if (seg >= g.segments) throw CorruptShard{};
    }
    void push_back(std::size_t i, FifoList& list, std::uint32_t seg, ListId id) {
        check_segment(seg);
        auto* infos = segments(i);
        infos[seg].next = kNone;
        infos[seg].list = id;
        if (list.tail == kNone) {
            list.head = seg;
        } else {
            check_segment(list.tail);
            infos[list.tail].next = seg;
        }
        list.tail = seg;
        ++list.count;
    }
    std::uint32_t pop_front(std::size_t i, FifoList& list) {
        auto seg = list.head;
        check_segment(seg);
        list.head = segments(i)[seg].next;
        if (list.head == kNone) list.tail = kNone;
        if (list.count == 0) throw CorruptShard{};
        --list.count;
        return seg;
    }

    void clear_shard(std::size_t i) {
        auto& s = shard(i);
        std::memset(index(i), 0, g.buckets * kSlotsPerBucket * sizeof(std::uint64_t));
        std::memset(reinterpret_cast<std::uint32_t*>(base + g.ghost_at) + i * g.ghost, 0,
                    g.ghost * sizeof(std::uint32_t));
        s.free_list = s.small = s.main = FifoList{kNone, kNone, 0, 0};
        for (std::uint32_t seg = 0; seg < g.segments; ++seg) {
            segments(i)[seg].used = 0;
            push_back(i, s.free_list, seg, kFree);
        }
        s.counters.items = 0;
        s.counters.bytes_used = 0;
    }

    // ---- index ----------------------------------------------------------------------------

    // The slot holding `key`, with its item, or {null, null}. Slots pointing at garbage are
    // emptied on the way.
    std::pair<std::uint64_t*, ItemHeader*> lookup(std::size_t i, std::uint64_t hash, std::string_view key) {
        auto* b = bucket(i, hash);
        for (std::size_t k = 0; k < kSlotsPerBucket; ++k) {
            auto slot = b[k];
            if (slot == 0 || !slot_tag_is(slot, hash)) continue;
            auto* h = item_at(i, slot_offset(slot));
            if (!h || h->dead) {
                b[k] = 0;
                shard(i).counters.corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            if (h->hash == hash && h->key_size == key.size() && std::memcmp(key_of(h), key.data(), key.size()) == 0)
                return {&b[k], h};
        }
        return {nullptr, nullptr};
    }

    // The slot pointing at the item at `offset`.
    std::uint64_t* slot_for(std::size_t i, const ItemHeader* h, std::uint64_t offset) {
        auto* b = bucket(i, h->hash);
        for (std::size_t k = 0; k < kSlotsPerBucket; ++k)
            if (b[k] != 0 && slot_offset(b[k]) == offset) return &b[k];
        return nullptr;
    }

    void account_removed(std::size_t i, const ItemHeader* h) {
        auto& c = shard(i).counters;
        c.items.fetch_sub(1, std::memory_order_relaxed);
        c.bytes_used.fetch_sub(item_size(h->key_size, h->value_size),
                               std::memory_order_relaxed);
    }

    void unlink(std::size_t i, std::uint64_t* slot, ItemHeader* h) {
        *slot = 0;
        h->dead = 1;
        account_removed(i, h);
    }

    // Empties every slot that points into [begin, end) of shard i's data (after garbage was
    // found inside a segment, its items can no longer be walked).
    void drop_slots_in(std::size_t i, std::uint64_t begin, std::uint64_t end) {
        auto* slots = index(i);
        for (std::size_t k = 0; k < g.buckets * kSlotsPerBucket; ++k) {
            if (slots[k] == 0) continue;
            auto off = slot_offset(slots[k]);
            if (off >= begin && off < end) {
                slots[k] = 0;
                shard(i).counters.corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
                shard(i).counters.items.fetch_sub(1, std::memory_order_relaxed);
            }
        }
    }

    // ---- eviction -------------------------------------------------------------------------

    // Walks the items of segment `seg` (already off its list). Expired items are dropped; live
    // ones that `keep` accepts move to the tail of main, and once that is full into `seg`
    // itself (everything before the walk's position there is already handled); the others are
    // evicted. `seg` ends up either free or as main's new tail.
    template <class Keep>
    void move_survivors_to_main(std::size_t i, std::uint32_t seg, std::int64_t now, Keep&& keep) {
        auto& s = shard(i);
        auto& c = s.counters;
        auto* infos = segments(i);
        const std::uint64_t seg_start = static_cast<std::uint64_t>(seg) * g.segment_size;
        const std::uint32_t used = std::min<std::uint32_t>(infos[seg].used, static_cast<std::uint32_t>(g.segment_size));
        std::uint32_t dest = s.main.tail;
        if (dest != kNone) check_segment(dest);
        std::uint32_t dest_used = dest == kNone ? 0 : infos[dest].used;
        for (std::uint32_t at = 0; at < used;) {
            auto* h = item_at(i, seg_start + at);
            if (!h) {  // garbage inside the segment: forget whatever still points past here
                drop_slots_in(i, seg_start + at, seg_start + g.segment_size);
                break;
            }
            const auto size = static_cast<std::uint32_t>(item_size(h->key_size, h->value_size));
            auto* slot = h->dead ? nullptr : slot_for(i, h, seg_start + at);
            if (!slot) {
                h->dead = 1;
            } else if (h->expiry <= now) {
                unlink(i, slot, h);
                c.expirations.fetch_add(1, std::memory_order_relaxed);
            } else if (int freq = keep(h, slot_freq(*slot)); freq < 0) {
                unlink(i, slot, h);
                c.evictions.fetch_add(1, std::memory_order_relaxed);
            } else {
                if (dest == kNone || dest_used + size > g.segment_size) {
                    if (dest != kNone && dest != seg) infos[dest].used = dest_used;
                    dest = seg;
                    dest_used = 0;
                }
                const std::uint64_t to = static_cast<std::uint64_t>(dest) * g.segment_size + dest_used;
                const auto hash = h->hash;
                if (to != seg_start + at) std::memmove(data(i) + to, h, size);
                *slot = make_slot(hash, to, static_cast<unsigned>(freq));
                dest_used += size;
            }
            at += size;
        }
        if (dest == seg) {
            infos[seg].used = dest_used;
            push_back(i, s.main, seg, kMain);
        } else {
            if (dest != kNone) infos[dest].used = dest_used;
            infos[seg].used = 0;
            push_back(i, s.free_list, seg, kFree);
        }
    }

    // S3-FIFO's small queue: the oldest segment's items that were hit there move to main; the
    // others are evicted and remembered in the ghost table.
    void evict_small(std::size_t i, std::int64_t now) {
        auto seg = pop_front(i, shard(i).small);
        move_survivors_to_main(i, seg, now, [&](ItemHeader* h, unsigned freq) {
            if (freq > 0) return static_cast<int>(freq);
            ghost(i, h->hash) = static_cast<std::uint32_t>(h->hash >> 32) | 1;
            return -1;
        });
    }

    // S3-FIFO's main queue, a CLOCK over segments: the oldest segment's items that were hit
    // since their last pass go back to the tail (each pass costs them one hit); the others go.
    void evict_main(std::size_t i, std::int64_t now) {
        auto seg = pop_front(i, shard(i).main);
        move_survivors_to_main(i, seg, now, [](ItemHeader*, unsigned freq) {
            return static_cast<int>(freq) - 1;  // -1 (evict) when it was not hit since the last pass
        });
    }

    std::uint32_t free_segment(std::size_t i, std::int64_t now) {
        auto& s = shard(i);
        const std::uint32_t small_target = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(g.segments / 10));
        for (int guard = 0; s.free_list.count == 0; ++guard) {
            // Each main pass costs every survivor a hit (at most kMaxFreq), so this ends.
            if (guard > static_cast<int>((kMaxFreq + 2) * g.segments)) throw CorruptShard{};
            if (s.small.count > 0 && (s.small.count > small_target || s.main.count == 0)) evict_small(i, now);
            else if (s.main.count > 0) evict_main(i, now);
            else throw CorruptShard{};
        }
        auto seg = pop_front(i, s.free_list);
        segments(i)[seg].used = 0;
        return seg;
    }

    // Room for `size` bytes at the tail of list `id`; returns the item's offset in shard i.
    std::uint64_t allocate(std::size_t i, ListId id, std::uint32_t size, std::int64_t now) {
        auto& s = shard(i);
        auto& list = id == kSmall ? s.small : s.main;
        if (list.tail != kNone) {
            check_segment(list.tail);
            auto& info = segments(i)[list.tail];
            if (info.used + size <= g.segment_size) {
                auto at = static_cast<std::uint64_t>(list.tail) * g.segment_size + info.used;
                info.used += size;
                return at;
            }
        }
        auto seg = free_segment(i, now);
        push_back(i, list, seg, id);  // the list may have changed during eviction: re-read tail
        segments(i)[seg].used = size;
        return static_cast<std::uint64_t>(seg) * g.segment_size;
    }

    // ---- operations -----------------------------------------------------------------------

    // Hits and misses are counted per process, on striped cache lines: a shared counter would
    // be the one cache line every reader writes.
    struct alignas(64) ReadCounters {
        std::atomic<std::uint64_t> hits{0}, misses{0};
    };
    std::array<ReadCounters, 16> read_counters;
    ReadCounters& my_counters() {
        static std::atomic<unsigned> next{0};
        thread_local const unsigned index = next++ % 16;
        return read_counters[index];
    }

    enum class Peek { Hit, Miss, Retry };

    // The lock-free lookup: reads the bucket and the item, copies the value, and trusts them
    // only if the shard's version did not move meanwhile. Every offset it follows is bounds-
    // checked first, so a concurrent writer can make it retry but never read outside the file.
    // Anything that needs a change (expired or suspicious entries) is left to the locked path.
    Peek peek(std::size_t i, std::uint64_t hash, std::string_view key, std::int64_t now, std::string& out) {
        auto& s = shard(i);
        const auto v1 = s.version.load(std::memory_order_acquire);
        if (v1 & 1) return Peek::Retry;
        auto* b = bucket(i, hash);
        std::uint64_t* found = nullptr;
        std::uint64_t found_slot = 0;
        for (std::size_t k = 0; k < kSlotsPerBucket && !found; ++k) {
            const auto slot = __atomic_load_n(&b[k], __ATOMIC_RELAXED);
            if (slot == 0 || !slot_tag_is(slot, hash)) continue;
            const auto offset = slot_offset(slot);
            if (offset >= g.segments * g.segment_size || offset % 8 != 0) return Peek::Retry;
            const auto within = offset % g.segment_size;
            const auto& info = segments(i)[offset / g.segment_size];
            const auto used = __atomic_load_n(&info.used, __ATOMIC_RELAXED);
            if (__atomic_load_n(&info.list, __ATOMIC_RELAXED) == kFree || used > g.segment_size ||
                within + sizeof(ItemHeader) > used)
                return Peek::Retry;
            const auto* at = data(i) + offset;
            ItemHeader h;
            std::memcpy(&h, at, sizeof h);
            if (h.magic != kItemMagic || h.dead || h.key_size > kMaxKeySize || h.value_size > g.max_object_size ||
                within + item_size(h.key_size, h.value_size) > used)
                return Peek::Retry;
            if (h.hash != hash || h.key_size != key.size() ||
                std::memcmp(at + sizeof(ItemHeader), key.data(), key.size()) != 0)
                continue;
            if (h.expiry <= now) return Peek::Retry;
            out.assign(reinterpret_cast<const char*>(at) + sizeof(ItemHeader) + h.key_size, h.value_size);
            if (item_checksum(h, reinterpret_cast<const char*>(at) + sizeof(ItemHeader)) != h.checksum)
                return Peek::Retry;
            found = &b[k];
            found_slot = slot;
        }
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.version.load(std::memory_order_relaxed) != v1) return Peek::Retry;
        if (!found) return Peek::Miss;
        // The hit: one more for S3-FIFO, unless the slot changed since (then it does not matter).
        if (auto f = slot_freq(found_slot); f < kMaxFreq) {
            auto bumped = found_slot + (1ull << kFreqShift);
            __atomic_compare_exchange_n(found, &found_slot, bumped, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        }
        return Peek::Hit;
    }

    std::optional<std::string> find(std::uint64_t hash, std::string_view key) {
        const auto i = shard_of(hash);
        auto& counters = my_counters();
        const auto now = opt.now();
        std::string out;
        for (int attempt = 0; attempt < 2; ++attempt) {
            switch (peek(i, hash, key, now, out)) {
                case Peek::Hit:
                    counters.hits.fetch_add(1, std::memory_order_relaxed);
                    return out;
                case Peek::Miss:
                    counters.misses.fetch_add(1, std::memory_order_relaxed);
                    return std::nullopt;
                case Peek::Retry:
                    break;
            }
        }
        // Contended, or something to clean up: the locked path.
        auto& c = shard(i).counters;
        Guard guard(*this, i);
        if (!guard.locked()) return std::nullopt;
        try {
            auto [slot, h] = lookup(i, hash, key);
            if (!h) {
                counters.misses.fetch_add(1, std::memory_order_relaxed);
                return std::nullopt;
            }
            const bool expired = h->expiry <= now;
            if (expired || !checksum_ok(h)) {
                Dirty dirty(shard(i));
                (expired ? c.expirations : c.corrupt_dropped).fetch_add(1, std::memory_order_relaxed);
                unlink(i, slot, h);
                counters.misses.fetch_add(1, std::memory_order_relaxed);
                return std::nullopt;
            }
            if (slot_freq(*slot) < kMaxFreq) *slot += 1ull << kFreqShift;
            counters.hits.fetch_add(1, std::memory_order_relaxed);
            return std::string(value_of(h), h->value_size);
        } catch (const CorruptShard&) {
            recover(i);
            return std::nullopt;
        }
    }

    bool put(std::uint64_t hash, std::string_view key, std::string_view value, std::int64_t expiry) {
        const auto i = shard_of(hash);
        auto& c = shard(i).counters;
        if (value.size() > g.max_object_size || key.size() > kMaxKeySize) {
            c.refused_too_large.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        const auto now = opt.now();
        if (expiry <= now) return false;
        Guard guard(*this, i);
        if (!guard.locked()) return false;
        try {
            Dirty dirty(shard(i));
            if (auto [slot, old] = lookup(i, hash, key); old) unlink(i, slot, old);
            auto& remembered = ghost(i, hash);
            const bool ghost_hit = remembered == (static_cast<std::uint32_t>(hash >> 32) | 1);
            if (ghost_hit) remembered = 0;
            const auto size = static_cast<std::uint32_t>(item_size(key.size(), value.size()));
            const auto offset = allocate(i, ghost_hit ? kMain : kSmall, size, now);

            auto* h = reinterpret_cast<ItemHeader*>(data(i) + offset);
            h->key_size = static_cast<std::uint32_t>(key.size());
            h->value_size = static_cast<std::uint32_t>(value.size());
            h->dead = 0;
            std::memset(h->reserved, 0, sizeof h->reserved);
            h->hash = hash;
            h->expiry = expiry;
            std::memcpy(const_cast<char*>(key_of(h)), key.data(), key.size());
            std::memcpy(const_cast<char*>(value_of(h)), value.data(), value.size());
            h->checksum = item_checksum(*h, h + 1);
            std::atomic_thread_fence(std::memory_order_release);
            h->magic = kItemMagic;  // published last: a torn write never looks like an item

            // The index slot: an empty one, else the bucket's coldest entry is evicted.
            auto* b = bucket(i, hash);
            std::uint64_t* target = nullptr;
            for (std::size_t k = 0; k < kSlotsPerBucket && !target; ++k)
                if (b[k] == 0) target = &b[k];
            if (!target) {
                unsigned coldest = 255;
                for (std::size_t k = 0; k < kSlotsPerBucket; ++k) {
                    auto* victim = item_at(i, slot_offset(b[k]));
                    unsigned f = victim ? slot_freq(b[k]) : 0;
                    if (!victim || f < coldest) {
                        coldest = f;
                        target = &b[k];
                        if (!victim) break;
                    }
                }
                if (auto* victim = item_at(i, slot_offset(*target))) {
                    unlink(i, target, victim);
                    c.evictions.fetch_add(1, std::memory_order_relaxed);
                } else {
                    *target = 0;
                }
            }
            *target = make_slot(hash, offset);
            c.items.fetch_add(1, std::memory_order_relaxed);
            c.bytes_used.fetch_add(size, std::memory_order_relaxed);
            c.puts.fetch_add(1, std::memory_order_relaxed);
            return true;
        } catch (const CorruptShard&) {
            recover(i);
            return false;
        }
    }

    bool erase(std::uint64_t hash, std::string_view key) {
        const auto i = shard_of(hash);
        Guard guard(*this, i);
        if (!guard.locked()) return false;
        try {
            auto [slot, h] = lookup(i, hash, key);
            if (!h) return false;
            Dirty dirty(shard(i));
            unlink(i, slot, h);
            return true;
        } catch (const CorruptShard&) {
            recover(i);
            return false;
        }
    }

    void recover(std::size_t i) {
        shard(i).counters.corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
        clear_shard(i);
    }

    // ---- opening --------------------------------------------------------------------------

    std::uint64_t geometry_checksum() const {
        return XXH3_64bits(base, offsetof(Superblock, geometry_checksum));
    }

    bool superblock_matches() const {
        const auto& s = sb();
        return s.magic == kMagic && s.schema_version == kSchemaVersion && s.abi_hash == abi_hash() &&
               s.file_size == g.file_size && s.max_object_size == g.max_object_size &&
               s.segment_size == g.segment_size && s.shard_count == g.shards &&
               s.segments_per_shard == g.segments && s.buckets_per_shard == g.buckets &&
               s.ghost_per_shard == g.ghost && s.geometry_checksum == geometry_checksum();
    }

    void build() {
        auto& s = sb();
        s.magic = kBuildingMagic;  // not a valid file until the end, but recognisably ours
        std::atomic_thread_fence(std::memory_order_seq_cst);
        std::memset(static_cast<void*>(purge_slots()), 0, Geometry::kPurgeBytes);
        sb().purge_latest.store(0);
        for (std::size_t i = 0; i < g.shards; ++i) {
            auto& sh = shard(i);
            std::memset(static_cast<void*>(&sh), 0, sizeof(ShardHeader));
            init_mutex(&sh.mutex);
            clear_shard(i);
        }
        s.schema_version = kSchemaVersion;
        s.shard_count = static_cast<std::uint32_t>(g.shards);
        s.abi_hash = abi_hash();
        s.file_size = g.file_size;
        s.max_object_size = g.max_object_size;
        s.segment_size = g.segment_size;
        s.segments_per_shard = g.segments;
        s.buckets_per_shard = g.buckets;
        s.ghost_per_shard = g.ghost;
        s.generation.fetch_add(1);
        s.clean_shutdown = 0;
        std::atomic_thread_fence(std::memory_order_seq_cst);
        s.magic = kMagic;
        s.geometry_checksum = geometry_checksum();
    }

    // Every list of every shard must cover each segment exactly once, within bounds.
    bool lists_valid(std::size_t i) const {
        const auto& s = shard(i);
        std::vector<bool> seen(g.segments, false);
        std::size_t total = 0;
        for (auto [list, id] : {std::pair{&s.free_list, kFree}, {&s.small, kSmall}, {&s.main, kMain}}) {
            std::uint32_t n = 0, last = kNone;
            for (auto seg = list->head; seg != kNone; seg = segments(i)[seg].next) {
                if (seg >= g.segments || seen[seg] || segments(i)[seg].list != id ||
                    segments(i)[seg].used > g.segment_size)
                    return false;
                seen[seg] = true;
                last = seg;
                ++n;
            }
            if (n != list->count || last != list->tail) return false;
            total += n;
        }
        return total == g.segments;
    }

    // After an unclean shutdown: keep only slots whose items are whole, checksummed, live and
    // filed under the right shard and bucket.
    void validate_entries(std::size_t i, std::int64_t now) {
        auto& c = shard(i).counters;
        auto* slots = index(i);
        std::uint64_t items = 0, bytes = 0;
        for (std::size_t k = 0; k < g.buckets * kSlotsPerBucket; ++k) {
            if (slots[k] == 0) continue;
            auto* h = item_at(i, slot_offset(slots[k]));
            bool ok = h && !h->dead && shard_of(h->hash) == i && slot_tag_is(slots[k], h->hash) &&
                      bucket(i, h->hash) == slots + (k / kSlotsPerBucket) * kSlotsPerBucket && checksum_ok(h);
            if (!ok) {
                slots[k] = 0;
                c.corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
            } else if (h->expiry <= now) {
                slots[k] = 0;
                h->dead = 1;
                c.expirations.fetch_add(1, std::memory_order_relaxed);
            } else {
                ++items;
                bytes += item_size(h->key_size, h->value_size);
            }
        }
        c.items = items;
        c.bytes_used = bytes;
    }

    // Purge times are only ever raised, so garbage from the future would stick: a time more
    // than a day ahead is brought back to now, which purges (never spares) what that slot covers.
    void sanitize_purges(std::int64_t now) {
        const std::int64_t limit = now + 86'400'000;
        auto* slots = purge_slots();
        std::int64_t latest = 0;
        for (std::size_t i = 0; i < PurgeTable::kSlots; ++i) {
            PurgeTable one(slots + i, &sb().purge_latest);
            auto m = one.read(0);
            if (m.hard > limit || m.hard < 0) slots[i].hard.store(static_cast<std::uint64_t>(now));
            if (m.soft > limit) {
                slots[i].soft.store(0);
                one.merge(0, {0, now, 0});
            }
            m = one.read(0);
            latest = std::max({latest, m.hard, m.soft});
        }
        sb().purge_latest.store(latest);
    }

    void map(std::size_t length) {
        void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) throw std::runtime_error(opt.path + ": mmap failed: " + std::strerror(errno));
        // Random lookups across a large segment miss the TLB: ask for huge pages (effective
        // where /sys/kernel/mm/transparent_hugepage/shmem_enabled allows it).
        madvise(p, length, MADV_HUGEPAGE);
        base = static_cast<std::uint8_t*>(p);
    }

    void resize_file() {
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, static_cast<off_t>(g.file_size)) != 0)
            throw std::runtime_error(opt.path + ": cannot resize: " + std::strerror(errno));
        // Reserve the pages now: on a full /dev/shm a later page fault would be a SIGBUS.
        if (int rc = posix_fallocate(fd, 0, static_cast<off_t>(g.file_size)); rc != 0)
            throw std::runtime_error(opt.path + ": cannot reserve " + std::to_string(g.file_size) +
                                     " bytes: " + std::strerror(rc));
    }

    // The file lives in a directory anyone may write to (/dev/shm): whoever planted it there
    // must not get to feed us data or read ours, and a file that is not ours is never rebuilt
    // over. Checked on the open descriptor, after O_NOFOLLOW, so nothing can be swapped in
    // between.
    void check_ownership(const struct stat& st) const {
        auto refuse = [&](const std::string& why) { throw std::runtime_error(opt.path + ": " + why); };
        if (!S_ISREG(st.st_mode)) refuse("not a regular file");
        if (st.st_uid != geteuid())
            refuse("owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                   std::to_string(geteuid()) + "); refusing to use it");
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            refuse(std::string("writable by other users (mode ") + mode + "); refusing to use it (chmod 600 it)");
        }
        if (st.st_size == 0) return;
        // Ours: the magic, the magic of a build in progress, or a file we extended but died
        // before writing (zeros).
        std::uint64_t magic = 0;
        const auto n = ::pread(fd, &magic, sizeof magic, 0);
        if (n == static_cast<ssize_t>(sizeof magic) && (magic == kMagic || magic == kBuildingMagic || magic == 0)) return;
        refuse("exists and is not a Cachalot L1 file; refusing to overwrite it (remove it, or set cache.l1.path "
               "to another file)");
    }

    void open() {
        fd = ::open(opt.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno == ELOOP)
            throw std::runtime_error(opt.path + ": is a symbolic link; refusing to follow it");
        if (fd < 0) throw std::runtime_error(opt.path + ": cannot open: " + std::strerror(errno));
        // Every user holds a shared lock; whoever gets it exclusively is alone and may build,
        // validate or mark the file clean.
        const bool alone = flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (!alone && flock(fd, LOCK_SH) != 0)
            throw std::runtime_error(opt.path + ": cannot lock: " + std::strerror(errno));
        struct stat st {};
        if (fstat(fd, &st) != 0) throw std::runtime_error(opt.path + ": cannot stat: " + std::strerror(errno));
        check_ownership(st);

        if (!alone) {
            if (static_cast<std::size_t>(st.st_size) != g.file_size)
                throw std::runtime_error(opt.path + ": in use by another process with a different size");
            map(g.file_size);
            if (!superblock_matches())
                throw std::runtime_error(opt.path + ": in use by another process with a different layout");
            state = OpenState::Attached;
            return;
        }

        if (st.st_size == 0) {
            state = OpenState::Created;
            resize_file();
            map(g.file_size);
            build();
        } else if (static_cast<std::size_t>(st.st_size) != g.file_size) {
            state = OpenState::Rebuilt;
            resize_file();
            map(g.file_size);
            build();
        } else {
            map(g.file_size);
            if (!superblock_matches()) {
                state = OpenState::Rebuilt;
                build();
            } else {
                const bool clean = sb().clean_shutdown.load() == 1;
                state = clean ? OpenState::ReusedClean : OpenState::Recovered;
                const auto now = opt.now();
                sanitize_purges(now);
                for (std::size_t i = 0; i < g.shards; ++i) {
                    auto& sh = shard(i);
                    init_mutex(&sh.mutex);  // alone: no one can hold it
                    if ((sh.version.load() & 1) || !lists_valid(i)) {
                        sh.version.store(0);
                        sh.counters.corrupt_dropped.fetch_add(1);
                        clear_shard(i);
                    } else if (!clean) {
                        validate_entries(i, now);
                    }
                }
            }
        }
        sb().clean_shutdown = 0;
        flock(fd, LOCK_SH);
    }

    void close() {
        if (base) {
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) sb().clean_shutdown = 1;  // the last user
            munmap(base, g.file_size);
            base = nullptr;
        }
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

ShmStore::ShmStore(Options options) : impl_(std::make_unique<Impl>()) {
    impl_->opt = std::move(options);
    if (!impl_->opt.now) impl_->opt.now = wall_now;
    impl_->g = Geometry::compute(impl_->opt.size, impl_->opt.max_object_size);
    try {
        impl_->open();
    } catch (...) {
        impl_->close();
        throw;
    }
}

ShmStore::~ShmStore() { impl_->close(); }

std::optional<std::string> ShmStore::find(Hash hash, std::string_view key) { return impl_->find(hash, key); }

bool ShmStore::put(Hash hash, std::string_view key, std::string_view value, WallMillis expiry) {
    return impl_->put(hash, key, value, expiry);
}

bool ShmStore::erase(Hash hash, std::string_view key) { return impl_->erase(hash, key); }

StoreStats ShmStore::stats() const {
    StoreStats out;
    const auto& g = impl_->g;
    for (const auto& rc : impl_->read_counters) {
        out.hits += rc.hits.load(std::memory_order_relaxed);
        out.misses += rc.misses.load(std::memory_order_relaxed);
    }
    out.capacity_bytes = g.shards * g.segments * g.segment_size;
    for (std::size_t i = 0; i < g.shards; ++i) {
        const auto& c = impl_->shard(i).counters;
        auto r = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
        out.items += r(c.items);
        out.bytes_used += r(c.bytes_used);
        out.puts += r(c.puts);
        out.evictions += r(c.evictions);
        out.expirations += r(c.expirations);
        out.refused_too_large += r(c.refused_too_large);
        out.lock_recoveries += r(c.lock_recoveries);
        out.corrupt_dropped += r(c.corrupt_dropped);
    }
    return out;
}

ShmStore::OpenState ShmStore::open_state() const { return impl_->state; }

PurgeTable ShmStore::purges() const { return PurgeTable(impl_->purge_slots(), &impl_->sb().purge_latest); }

std::size_t ShmStore::item_overhead() { return sizeof(ItemHeader) + 7 + sizeof(std::uint64_t); }

std::string ShmStore::describe() const {
    const auto& g = impl_->g;
    return std::to_string(g.shards) + " shard(s) x " + std::to_string(g.segments) + " segments of " +
           std::to_string(g.segment_size / 1024) + " KiB, " + std::to_string(g.buckets * kSlotsPerBucket) +
           " index slots per shard";
}

const char* to_string(ShmStore::OpenState state) {
    switch (state) {
        case ShmStore::OpenState::Created: return "created";
        case ShmStore::OpenState::Rebuilt: return "rebuilt";
        case ShmStore::OpenState::ReusedClean: return "reused-clean";
        case ShmStore::OpenState::Recovered: return "recovered";
        case ShmStore::OpenState::Attached: return "attached";
    }
    return "unknown";
}

}  // namespace cachalot::store
