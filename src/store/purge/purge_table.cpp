#include "cachalot/store/purge_table.hpp"

#include <algorithm>

namespace cachalot::store {
namespace {

constexpr int kGapBits = 22;
constexpr std::uint64_t kGapMask = (1ull << kGapBits) - 1;
constexpr std::uint64_t kMaxMillis = (1ull << (64 - kGapBits)) - 1;  // year 2109

// The gap field is the whole seconds between the two purges plus one (0: no previous), so that
// the previous purge read back is never earlier than the real one: a soft-purged entry is then
// judged as purged twice (stale since it was fetched) rather than once, never the other way.
std::uint64_t encode_soft(WallMillis latest, WallMillis prev) {
    if (latest <= 0) return 0;
    const auto ms = std::min<std::uint64_t>(static_cast<std::uint64_t>(latest), kMaxMillis);
    std::uint64_t gap = 0;
    if (prev > 0 && prev < latest)
        gap = std::min<std::uint64_t>(static_cast<std::uint64_t>(latest - prev) / 1000 + 1, kGapMask);
    return ms << kGapBits | gap;
}

void decode_soft(std::uint64_t word, PurgeMarks& m) {
    m.soft = static_cast<WallMillis>(word >> kGapBits);
    const auto gap = word & kGapMask;
    m.prev_soft = gap == 0 ? 0 : m.soft - static_cast<WallMillis>(gap - 1) * 1000;
}

void merge_max(std::atomic<std::uint64_t>& word, std::uint64_t value) {
    auto cur = word.load(std::memory_order_relaxed);
    while (cur < value && !word.compare_exchange_weak(cur, value, std::memory_order_acq_rel)) {
    }
}

void merge_max(std::atomic<std::int64_t>& word, std::int64_t value) {
    auto cur = word.load(std::memory_order_relaxed);
    while (cur < value && !word.compare_exchange_weak(cur, value, std::memory_order_acq_rel)) {
    }
}

}  // namespace

PurgeMarks PurgeTable::read(std::size_t slot) const {
    const auto& s = slots_[slot % kSlots];
    PurgeMarks m;
    m.hard = static_cast<WallMillis>(s.hard.load(std::memory_order_acquire));
    decode_soft(s.soft.load(std::memory_order_acquire), m);
    return m;
}

void PurgeTable::merge(std::size_t slot, const PurgeMarks& marks) {
    auto& s = slots_[slot % kSlots];
    if (marks.hard > 0) merge_max(s.hard, static_cast<std::uint64_t>(marks.hard));
    if (marks.soft > 0) {
        auto cur = s.soft.load(std::memory_order_relaxed);
        for (;;) {
            PurgeMarks have;
            decode_soft(cur, have);
            // The latest two distinct times of both.
            WallMillis times[] = {have.soft, have.prev_soft, marks.soft, marks.prev_soft};
            std::sort(std::begin(times), std::end(times), std::greater<>());
            const WallMillis latest = times[0];
            WallMillis prev = 0;
            for (auto t : times)
                if (t < latest) {
                    prev = t;
                    break;
                }
            const auto next = encode_soft(latest, prev);
            if (next == cur || s.soft.compare_exchange_weak(cur, next, std::memory_order_acq_rel)) break;
        }
    }
    merge_max(*latest_, std::max(marks.hard, marks.soft));
}

MemoryPurgeTable::MemoryPurgeTable()
    : slots_(new PurgeSlot[PurgeTable::kSlots]()), table_(slots_.get(), &latest_) {}

}  // namespace cachalot::store
