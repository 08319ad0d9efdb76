// The fetch lock: one fetcher per key, and the named end of every wait. Across nodes, against a
// real redis-server: a second node waits for the first node's entry instead of fetching, and
// fetches itself once the holder lets go without storing.

#include "cachalot/cache/fetch_lock.hpp"
#include "cachalot/store/redis_store.hpp"
#include "support/harness.hpp"

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

// Designated initializers leave the other members to their defaults, on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace cachalot;
using cache::FetchLock;
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

FetchLock::Prober nothing_yet() {
    return []() -> net::awaitable<FetchLock::Probe> { co_return FetchLock::Probe{}; };
}

// The first request holds the Write and does `finish` with it; a second request's wait ends
// as the returned value says.
FetchLock::End second_waits_for(std::function<void(std::optional<FetchLock::Write>&)> finish,
                                std::chrono::milliseconds wait_timeout = 10s) {
    net::io_context ioc;
    cache::Coalescer coalescer;
    FetchLock lock(coalescer, nullptr, {.wait_timeout = wait_timeout});
    std::optional<FetchLock::End> end;
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            const std::string key = "k";  // named: GCC 12 mishandles temporaries across a co_await
            const auto probe = nothing_yet();
            auto first = co_await lock.acquire(key, probe);
            REQUIRE(std::holds_alternative<FetchLock::Write>(first));
            std::optional<FetchLock::Write> write(std::move(std::get<FetchLock::Write>(first)));
            net::co_spawn(
                ioc,
                [&]() -> net::awaitable<void> {
                    const std::string key = "k";
                    const auto probe = nothing_yet();
                    auto second = co_await lock.acquire(key, probe);
                    REQUIRE(std::holds_alternative<FetchLock::Wait>(second));
                    end = std::get<FetchLock::Wait>(second).end;
                },
                net::detached);
            // The second request joins at once (it was posted before this timer can fire).
            net::steady_timer t(ioc, 5ms);
            co_await t.async_wait(net::use_awaitable);
            // To see it give up, the Write is held until it has.
            while (wait_timeout < 1s && !end) {
                t.expires_after(5ms);
                co_await t.async_wait(net::use_awaitable);
            }
            finish(write);
        },
        net::detached);
    ioc.run();
    REQUIRE(end);
    return *end;
}

}  // namespace

TEST_CASE("fetch lock: every wait ends in a named state", "[fetch_lock]") {
    auto entry = std::make_shared<const cache::Entry>();
    CHECK(second_waits_for([&](auto& w) { w->publish({entry, false}); }) == FetchLock::End::Done);
    CHECK(second_waits_for([](auto& w) { w->publish({nullptr, false}); }) == FetchLock::End::NotStored);
    CHECK(second_waits_for([](auto& w) { w->publish({nullptr, true}); }) == FetchLock::End::OriginFailed);
    CHECK(second_waits_for([](auto& w) { w.reset(); }) == FetchLock::End::HolderGone);
    CHECK(second_waits_for([](auto&) {}, 50ms) == FetchLock::End::GaveUp);
}

TEST_CASE("fetch lock: try_acquire never waits, a key is free again once its fetch's Write is gone",
          "[fetch_lock]") {
    cache::Coalescer coalescer;
    FetchLock lock(coalescer, nullptr, {});
    auto first = lock.try_acquire("k");
    REQUIRE(first);
    CHECK_FALSE(lock.try_acquire("k"));
    CHECK(lock.try_acquire("other"));
    first->publish({});
    first.reset();
    CHECK(lock.try_acquire("k"));
}

TEST_CASE("fetch lock across nodes: the second node waits for the first node's entry, or fetches when it "
          "lets go",
          "[fetch_lock][redis]") {
    test::RedisServer redis;
    net::io_context ioc;
    store::RedisOptions options;
    options.address = redis.address();
    store::RedisStore l2_a(ioc.get_executor(), options), l2_b(ioc.get_executor(), options);
    cache::Coalescer node_a, node_b;  // two nodes: nothing shared but Redis
    const FetchLock::Options across{.wait_timeout = 10s, .across_nodes = true, .lock_ttl = 20s, .lock_poll = 5ms};
    FetchLock lock_a(node_a, &l2_a, across), lock_b(node_b, &l2_b, across);

    bool stored_by_a = false;
    int probes = 0;
    FetchLock::Prober probe = [&]() -> net::awaitable<FetchLock::Probe> {
        ++probes;
        if (!stored_by_a) co_return FetchLock::Probe{};
        cache::Entry e;
        e.body = "from a";
        co_return FetchLock::Probe{e, false};
    };
    std::optional<FetchLock::Wait> waited;
    bool b_fetches = false;
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            // A takes the key (and its Redis lock); B waits, probing, until A's entry shows up.
            const std::string k = "k", k2 = "k2";
            auto a = co_await lock_a.acquire(k, probe);
            REQUIRE(std::holds_alternative<FetchLock::Write>(a));
            CHECK(redis.command({"EXISTS", cachalot::store::redis_key("cachalot:", FetchLock::lock_name("k"))}) == "1");
            net::co_spawn(
                ioc,
                [&]() -> net::awaitable<void> {
                    const std::string k = "k";
                    auto b = co_await lock_b.acquire(k, probe);
                    REQUIRE(std::holds_alternative<FetchLock::Wait>(b));
                    waited = std::get<FetchLock::Wait>(b);
                },
                net::detached);
            while (probes < 3) {
                net::steady_timer t(ioc, 5ms);
                co_await t.async_wait(net::use_awaitable);
            }
            stored_by_a = true;
            std::get<FetchLock::Write>(a).publish({});
            while (!waited) {
                net::steady_timer t(ioc, 5ms);
                co_await t.async_wait(net::use_awaitable);
            }

            // Again, but A lets go without storing: B stops waiting when the lock is released,
            // and fetches itself.
            stored_by_a = false;
            probes = 0;
            auto a2 = co_await lock_a.acquire(k2, probe);
            REQUIRE(std::holds_alternative<FetchLock::Write>(a2));
            net::co_spawn(
                ioc,
                [&]() -> net::awaitable<void> {
                    const std::string k2 = "k2";
                    auto b = co_await lock_b.acquire(k2, probe);
                    b_fetches = std::holds_alternative<FetchLock::Write>(b);
                },
                net::detached);
            while (probes < 3) {
                net::steady_timer t(ioc, 5ms);
                co_await t.async_wait(net::use_awaitable);
            }
            { auto gone = std::move(std::get<FetchLock::Write>(a2)); }
            while (!b_fetches) {
                net::steady_timer t(ioc, 5ms);
                co_await t.async_wait(net::use_awaitable);
            }
            ioc.stop();
        },
        net::detached);
    ioc.run_for(30s);
    REQUIRE(waited);
    CHECK(waited->end == FetchLock::End::Done);
    REQUIRE(waited->published.entry);
    CHECK(waited->published.entry->body == "from a");
    CHECK(b_fetches);
}

TEST_CASE("fetch lock across nodes: a node that takes the lock after the other node stored and released it uses "
          "that entry instead of fetching",
          "[fetch_lock][redis]") {
    test::RedisServer redis;
    net::io_context ioc;
    store::RedisOptions options;
    options.address = redis.address();
    store::RedisStore l2(ioc.get_executor(), options);
    cache::Coalescer node;
    FetchLock lock(node, &l2, {.wait_timeout = 10s, .across_nodes = true, .lock_ttl = 20s, .lock_poll = 5ms});
    // The lock is free, and L2 already has the other node's entry (this node's earlier L2
    // lookup came just before it landed).
    FetchLock::Prober stored_meanwhile = []() -> net::awaitable<FetchLock::Probe> {
        cache::Entry e;
        e.body = "from the other node";
        co_return FetchLock::Probe{e, false};
    };
    std::optional<FetchLock::Wait> got;
    bool fetches = false;
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            const std::string k = "k";
            auto acquired = co_await lock.acquire(k, stored_meanwhile);
            fetches = std::holds_alternative<FetchLock::Write>(acquired);
            if (auto* w = std::get_if<FetchLock::Wait>(&acquired)) got = *w;
            co_await l2.flush();  // the lock's release
            ioc.stop();           // (the open Redis connection would keep it running)
        },
        net::detached);
    ioc.run();
    CHECK_FALSE(fetches);
    REQUIRE(got);
    const auto& wait = *got;
    CHECK(wait.end == FetchLock::End::Done);
    CHECK(wait.published.entry->body == "from the other node");
    CHECK(redis.command({"EXISTS", cachalot::store::redis_key("cachalot:", FetchLock::lock_name("k"))}) == "0");
}
