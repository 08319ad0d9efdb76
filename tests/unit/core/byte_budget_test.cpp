#include "cachalot/core/byte_budget.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

using cachalot::core::ByteBudget;

TEST_CASE("a reservation grows within the budget and gives everything back when it ends") {
    ByteBudget budget(100);
    {
        auto a = budget.reserve();
        CHECK(a.grow_to(60));
        CHECK(budget.used() == 60);
        auto b = budget.reserve();
        CHECK_FALSE(b.grow_to(41));  // would pass the limit: refused, nothing taken
        CHECK(b.held() == 0);
        CHECK(b.grow_to(40));
        CHECK(budget.used() == 100);
        CHECK(a.grow_to(50));  // never shrinks
        CHECK(a.held() == 60);
        auto moved = std::move(a);
        CHECK(budget.used() == 100);
        moved.release();
        CHECK(budget.used() == 40);
    }
    CHECK(budget.used() == 0);
}

TEST_CASE("a reservation of no budget holds nothing and refuses to grow") {
    ByteBudget::Reservation none;
    CHECK(none.grow_to(0));
    CHECK_FALSE(none.grow_to(1));
}

TEST_CASE("concurrent reservations never take more than the budget together") {
    ByteBudget budget(1000);
    std::vector<std::thread> threads;
    std::atomic<int> over{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                auto r = budget.reserve();
                if (r.grow_to(300) && budget.used() > 1000) ++over;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(over == 0);
    CHECK(budget.used() == 0);
}
