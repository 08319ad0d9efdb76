// The Redis L2's own behaviour beyond the store suite: untrusted bytes, outages, the breaker,
// the write queue, AUTH and SELECT. Against a real redis-server on a free port.

#include "cachalot/store/redis_store.hpp"
#include "support/harness.hpp"
#include "sync_redis_store.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace cachalot::store;
using namespace std::chrono_literals;

namespace {

struct Fixture {
    cachalot::test::RedisServer redis;
    SyncRedisStore store;
    explicit Fixture(std::function<void(RedisOptions&)> tune = {})
        : store(redis.address(), wall_now, 1 << 20, [this] { return std::stoull(redis.command({"DBSIZE"})); },
                std::move(tune)) {}
    WallMillis later() const { return wall_now() + 60'000; }
};

}  // namespace

TEST_CASE("garbage under an L2 key is a miss, counted and deleted", "[redis]") {
    Fixture f;
    for (std::string garbage : {std::string("hello"), std::string("CL2\x01\x00", 5), std::string()}) {
        INFO("value of " << garbage.size() << " bytes");
        f.redis.command({"SET", redis_key("cachalot:", "k"), garbage});
        const auto before = f.store.async().counters().corrupt_dropped.load();
        CHECK_FALSE(f.store.find(hash_key("k"), "k"));
        CHECK(f.store.async().counters().corrupt_dropped == before + 1);
        CHECK(f.store.stats().items == 0);  // deleted
    }
    // A key of another type answers with an error: a miss, not a crash.
    f.redis.command({"RPUSH", redis_key("cachalot:", "list"), "x"});
    CHECK_FALSE(f.store.find(hash_key("list"), "list"));
}

TEST_CASE("a value stored past its expiry in the envelope is not served even before Redis reaps it", "[redis]") {
    auto now = std::make_shared<std::atomic<WallMillis>>(wall_now());
    cachalot::test::RedisServer redis;
    SyncRedisStore store(redis.address(), [now] { return now->load(); }, 1 << 20, [] { return 0; });
    REQUIRE(store.put(hash_key("k"), "k", "v", *now + 60'000));
    CHECK(store.find(hash_key("k"), "k"));
    *now += 60'000;  // our clock says expired; Redis' PX has 60 s to go
    CHECK_FALSE(store.find(hash_key("k"), "k"));
    CHECK(store.async().counters().expirations == 1);
}

TEST_CASE("Redis down: lookups are misses, the breaker opens, and closes when Redis is back", "[redis]") {
    Fixture f([](RedisOptions& o) {
        o.failure_threshold = 3;
        o.breaker_backoff = 300ms;
    });
    REQUIRE(f.store.put(hash_key("k"), "k", "v", f.later()));
    f.redis.kill();
    for (int i = 0; i < 3; ++i) CHECK_FALSE(f.store.find(hash_key("k"), "k"));
    const auto& c = f.store.async().counters();
    CHECK(c.errors >= 3);
    CHECK(c.breakers_open == 1);
    CHECK(c.breaker_opened == 1);
    // Open: Redis is not even asked.
    const auto errors = c.errors.load();
    CHECK_FALSE(f.store.find(hash_key("k"), "k"));
    CHECK(c.errors == errors);
    CHECK_FALSE(f.store.async().put_later("k", "v", f.later()));
    CHECK(c.write_drops == 1);

    f.redis.start();  // empty again
    std::this_thread::sleep_for(350ms);
    REQUIRE(f.store.put(hash_key("k"), "k", "back", f.later()));  // the probe
    CHECK(c.breakers_open == 0);
    CHECK(f.store.find(hash_key("k"), "k") == std::optional<std::string>("back"));
}

TEST_CASE("a Redis that stops answering costs a timeout, counted, and a miss", "[redis]") {
    Fixture f([](RedisOptions& o) { o.command_timeout = 200ms; });
    REQUIRE(f.store.put(hash_key("k"), "k", "v", f.later()));
    f.redis.pause();
    CHECK_FALSE(f.store.find(hash_key("k"), "k"));
    CHECK(f.store.async().counters().timeouts == 1);
    f.redis.resume();
    // The connection that timed out was dropped; the next command opens a new one.
    CHECK(f.store.find(hash_key("k"), "k") == std::optional<std::string>("v"));
}

TEST_CASE("queued L2 writes land in order, and a full queue drops instead of blocking", "[redis]") {
    Fixture f([](RedisOptions& o) { o.write_queue = 3; });
    auto& s = f.store.async();
    CHECK(s.put_later("a", "1", f.later()));
    CHECK(s.put_later("a", "2", f.later()));
    CHECK(s.put_later("b", "x", f.later()));
    CHECK_FALSE(s.put_later("c", "y", f.later()));
    CHECK(s.counters().write_drops == 1);
    CHECK(s.counters().queue_depth == 3);
    CHECK(f.store.stats().items == 2);  // runs the loop until the queue has drained
    CHECK(s.counters().queue_depth == 0);
    CHECK(f.store.find(hash_key("a"), "a") == std::optional<std::string>("2"));
    CHECK_FALSE(f.store.find(hash_key("c"), "c"));
}

TEST_CASE("the L2 authenticates and selects its database", "[redis]") {
    cachalot::test::RedisServer redis;
    redis.require_password("s3cret");
    auto dbsize3 = [&] {
        return std::stoull(redis.command({"EVAL", "redis.call('select', 3) return redis.call('dbsize')", "0"}));
    };
    SECTION("with the password and db") {
        SyncRedisStore store(redis.address(), wall_now, 1 << 20, {}, [](RedisOptions& o) {
            o.password = "s3cret";
            o.db = 3;
        });
        REQUIRE(store.put(hash_key("k"), "k", "v", wall_now() + 60'000));
        CHECK(store.find(hash_key("k"), "k") == std::optional<std::string>("v"));
        CHECK(dbsize3() == 1);
        CHECK(redis.command({"DBSIZE"}) == "0");  // db 0 untouched
    }
    SECTION("without the password every command fails, as a miss") {
        SyncRedisStore store(redis.address(), wall_now, 1 << 20, {});
        CHECK_FALSE(store.put(hash_key("k"), "k", "v", wall_now() + 60'000));
        CHECK_FALSE(store.find(hash_key("k"), "k"));
        CHECK(store.async().counters().errors == 2);
    }
}

TEST_CASE("the L2 reaches Redis over a Unix socket", "[redis]") {
    cachalot::test::RedisServer redis;
    SyncRedisStore store(redis.unix_address(), wall_now, 1 << 20, {});
    REQUIRE(store.put(hash_key("k"), "k", "v", wall_now() + 60'000));
    CHECK(redis.command({"EXISTS", redis_key("cachalot:", "k")}) == "1");
    CHECK(store.find(hash_key("k"), "k") == std::optional<std::string>("v"));
}
