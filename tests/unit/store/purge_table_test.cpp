// The purge table's merges: only ever later, in any order, any number of times.

#include "cachalot/store/purge_table.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

using namespace cachalot::store;

namespace {

PurgeMarks hard(WallMillis t) { return {t, 0, 0}; }
PurgeMarks soft(WallMillis t) { return {0, t, 0}; }

constexpr WallMillis kT = 1'790'000'000'000;

}  // namespace

TEST_CASE("purge table: a slot starts unpurged, and a hard purge only ever moves later") {
    MemoryPurgeTable memory;
    auto& t = memory.table();
    CHECK(t.read(7) == PurgeMarks{});
    CHECK(t.latest() == 0);
    t.merge(7, hard(kT));
    CHECK(t.read(7).hard == kT);
    t.merge(7, hard(kT - 5000));  // late news of an earlier purge changes nothing
    CHECK(t.read(7).hard == kT);
    t.merge(7, hard(kT + 1));
    CHECK(t.read(7).hard == kT + 1);
    CHECK(t.read(8) == PurgeMarks{});  // other slots untouched
    CHECK(t.latest() == kT + 1);
}

TEST_CASE("purge table: soft purges keep the latest and an upper bound of the one before") {
    MemoryPurgeTable memory;
    auto& t = memory.table();
    t.merge(1, soft(kT));
    CHECK(t.read(1).soft == kT);
    CHECK(t.read(1).prev_soft == 0);
    t.merge(1, soft(kT + 2'500));
    auto m = t.read(1);
    CHECK(m.soft == kT + 2'500);
    // The previous one read back is never earlier than the real one (kT), and within a second.
    CHECK(m.prev_soft >= kT);
    CHECK(m.prev_soft <= kT + 1'000);
    t.merge(1, soft(kT + 1'000));  // between the two: it becomes the previous one
    m = t.read(1);
    CHECK(m.soft == kT + 2'500);
    CHECK(m.prev_soft >= kT + 1'000);
    CHECK(m.prev_soft < kT + 2'500);
    t.merge(1, soft(kT + 2'500));  // the same purge again: nothing changes
    CHECK(t.read(1) == m);
}

TEST_CASE("purge table: merges give the same state in any order") {
    const std::vector<PurgeMarks> purges{soft(kT + 10'000), hard(kT + 3), soft(kT), soft(kT + 70'000), hard(kT)};
    MemoryPurgeTable forward, backward;
    for (const auto& p : purges) forward.table().merge(3, p);
    for (auto it = purges.rbegin(); it != purges.rend(); ++it) backward.table().merge(3, *it);
    CHECK(forward.table().read(3) == backward.table().read(3));
    CHECK(forward.table().read(3).soft == kT + 70'000);
    CHECK(forward.table().read(3).hard == kT + 3);
}

TEST_CASE("purge table: concurrent merges lose no purge") {
    MemoryPurgeTable memory;
    auto& t = memory.table();
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&t, i] {
            for (WallMillis k = 0; k < 10'000; ++k) {
                t.merge(5, hard(kT + k * 4 + i));
                t.merge(5, soft(kT + k * 4 + i));
            }
        });
    for (auto& th : threads) th.join();
    CHECK(t.read(5).hard == kT + 39'999);
    CHECK(t.read(5).soft == kT + 39'999);
    CHECK(t.latest() == kT + 39'999);
}
