// The coalescer on its own: one fetcher per key, waiters woken with what it published (or with
// nothing), timeouts, and waiters on other threads' event loops.

#include "cachalot/cache/coalescer.hpp"

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <thread>

using namespace cachalot::cache;
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

struct Outcome {
    bool fetched = false;
    bool done = false;
    std::optional<Coalescer::Shared> shared;
};

// Joins `key`; a fetcher holds its permit for `hold`, then publishes `publish` (or drops the
// permit without publishing when it is empty).
net::awaitable<void> request(Coalescer& c, std::string key, Outcome& out, std::chrono::milliseconds wait,
                             std::chrono::milliseconds hold, std::optional<Coalescer::Shared> publish) {
    auto joined = co_await c.join(key, wait);
    if (joined.permit) {
        out.fetched = true;
        net::steady_timer t(co_await net::this_coro::executor, hold);
        co_await t.async_wait(net::use_awaitable);
        if (publish) joined.permit->publish(*publish);
    } else {
        out.shared = joined.shared;
    }
    out.done = true;
}

std::shared_ptr<const Entry> entry(const std::string& body) {
    auto e = std::make_shared<Entry>();
    e->body = body;
    return e;
}

}  // namespace

TEST_CASE("coalescer: the first request fetches and the others get what it published", "[coalescer]") {
    net::io_context ioc;
    Coalescer c;
    std::vector<Outcome> out(5);
    for (auto& o : out)
        net::co_spawn(ioc, request(c, "k", o, 5s, 50ms, Coalescer::Shared{entry("one"), false}), net::detached);
    ioc.run();
    CHECK(out[0].fetched);
    for (std::size_t i = 1; i < out.size(); ++i) {
        CHECK_FALSE(out[i].fetched);
        REQUIRE(out[i].shared);
        REQUIRE(out[i].shared->entry);
        CHECK(out[i].shared->entry->body == "one");
    }
    CHECK(c.in_flight() == 0);
}

TEST_CASE("coalescer: a permit dropped without publishing wakes the waiters with nothing", "[coalescer]") {
    net::io_context ioc;
    Coalescer c;
    std::vector<Outcome> out(3);
    for (auto& o : out) net::co_spawn(ioc, request(c, "k", o, 60s, 20ms, std::nullopt), net::detached);
    ioc.run();
    for (std::size_t i = 1; i < out.size(); ++i) {
        REQUIRE(out[i].shared);  // woken (a timed-out waiter has nothing here)
        CHECK_FALSE(out[i].shared->entry);
    }
}

TEST_CASE("coalescer: a waiter gives up after its wait timeout, empty-handed", "[coalescer]") {
    net::io_context ioc;
    Coalescer c;
    Outcome fetcher, waiter;
    net::co_spawn(ioc, request(c, "k", fetcher, 5s, 300ms, Coalescer::Shared{entry("late"), false}), net::detached);
    net::co_spawn(ioc, request(c, "k", waiter, 20ms, 0ms, std::nullopt), net::detached);
    ioc.run();
    CHECK(fetcher.fetched);
    CHECK(waiter.done);
    CHECK_FALSE(waiter.shared);
}

TEST_CASE("coalescer: different keys do not wait on each other, try_acquire never waits", "[coalescer]") {
    net::io_context ioc;
    Coalescer c;
    Outcome a, b;
    net::co_spawn(ioc, request(c, "a", a, 5s, 10ms, Coalescer::Shared{}), net::detached);
    net::co_spawn(ioc, request(c, "b", b, 5s, 10ms, Coalescer::Shared{}), net::detached);
    ioc.run();
    CHECK(a.fetched);
    CHECK(b.fetched);

    auto permit = c.try_acquire("k");
    REQUIRE(permit);
    CHECK_FALSE(c.try_acquire("k"));
    permit->publish({});
    CHECK_FALSE(c.try_acquire("k"));  // published, and still held (a body may still stream)
    permit.reset();
    CHECK(c.try_acquire("k"));
}

TEST_CASE("coalescer: a request that joins after the publish and before the permit goes gets what was published",
          "[coalescer]") {
    net::io_context ioc;
    Coalescer c;
    auto permit = c.try_acquire("k");
    REQUIRE(permit);
    permit->publish(Coalescer::Shared{entry("streaming"), false});
    Outcome late;
    net::co_spawn(ioc, request(c, "k", late, 5s, 0ms, std::nullopt), net::detached);
    ioc.run();
    CHECK_FALSE(late.fetched);
    REQUIRE(late.shared);
    REQUIRE(late.shared->entry);
    CHECK(late.shared->entry->body == "streaming");
}

TEST_CASE("coalescer: waiters on other threads are woken on their own event loops", "[coalescer]") {
    Coalescer c;
    net::io_context fetcher_loop, waiter_loop;
    auto guard = net::make_work_guard(fetcher_loop);
    Outcome fetcher, waiter;
    std::thread t([&] { fetcher_loop.run(); });
    net::co_spawn(fetcher_loop, request(c, "k", fetcher, 5s, 200ms, Coalescer::Shared{entry("x"), false}),
                  net::detached);
    while (c.in_flight() == 0) std::this_thread::sleep_for(1ms);
    net::co_spawn(waiter_loop, request(c, "k", waiter, 5s, 0ms, std::nullopt), net::detached);
    waiter_loop.run();
    guard.reset();
    t.join();
    REQUIRE(waiter.shared);
    REQUIRE(waiter.shared->entry);
    CHECK(waiter.shared->entry->body == "x");
}
