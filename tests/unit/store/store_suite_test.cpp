// The behaviour every store must have. Each store implementation joins the TEMPLATE_TEST_CASEs
// below through a StoreUnderTest specialization. The Redis L2 runs against a real redis-server
// the test starts, and again against a Redis Cluster the test creates; it joins every case but
// the capacity one (Redis bounds its memory itself, with its own maxmemory policy).

#include "cachalot/store/memory_store.hpp"
#include "cachalot/store/redis_store.hpp"
#include "cachalot/store/shm_store.hpp"
#include "support/harness.hpp"
#include "sync_redis_store.hpp"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>

using namespace cachalot::store;

namespace {

// A clock tests move by hand.
struct FakeClock {
    std::shared_ptr<std::atomic<WallMillis>> t = std::make_shared<std::atomic<WallMillis>>(1'700'000'000'000);
    WallClock fn() const {
        return [t = t] { return t->load(); };
    }
    void advance(WallMillis ms) { *t += ms; }
    WallMillis now() const { return t->load(); }
};

template <class Store>
struct StoreUnderTest;

template <>
struct StoreUnderTest<MemoryStore> {
    FakeClock clock;
    MemoryStore store;
    explicit StoreUnderTest(std::size_t size = 8 << 20, std::size_t max_object = 64 << 10)
        : store({size, max_object, clock.fn()}) {}
};

template <>
struct StoreUnderTest<ShmStore> {
    static std::string fresh_path() {
        static std::atomic<int> n{0};
        return "/dev/shm/cachalot-suite-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    }
    FakeClock clock;
    std::string path = fresh_path();
    ShmStore store;
    explicit StoreUnderTest(std::size_t size = 8 << 20, std::size_t max_object = 64 << 10)
        : store({path, size, max_object, clock.fn()}) {}
    ~StoreUnderTest() { std::filesystem::remove(path); }
};

/// The Redis L2 in the suite.
struct RedisL2 {};

template <>
struct StoreUnderTest<RedisL2> {
    FakeClock clock;
    cachalot::test::RedisServer redis;
    SyncRedisStore store;
    explicit StoreUnderTest(std::size_t size = 8 << 20, std::size_t max_object = 64 << 10)
        : store(redis.address(), clock.fn(), max_object, [this] { return std::stoull(redis.command({"DBSIZE"})); }) {}
};

/// The Redis L2 on a 3-primary Redis Cluster.
struct RedisClusterL2 {};

template <>
struct StoreUnderTest<RedisClusterL2> {
    FakeClock clock;
    cachalot::test::RedisCluster cluster;
    SyncRedisStore store;
    explicit StoreUnderTest(std::size_t size = 8 << 20, std::size_t max_object = 64 << 10)
        : store(
              "", clock.fn(), max_object,
              [this] {
                  std::uint64_t items = 0;
                  for (std::size_t i = 0; i < cluster.size(); ++i)
                      items += std::stoull(cluster.node(i).command({"DBSIZE"}));
                  return items;
              },
              [this](RedisOptions& o) { o.cluster = cluster.seeds(); }) {}
};

std::string value_for(const std::string& key, std::size_t size) {
    std::string v(size, '\0');
    auto h = hash_key(key);
    for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<char>((h >> ((i % 8) * 8)) + i);
    return v;
}

}  // namespace

TEMPLATE_TEST_CASE("a stored value is found until it is erased", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    auto& s = t.store;
    auto h = hash_key("k");
    CHECK_FALSE(s.find(h, "k"));
    REQUIRE(s.put(h, "k", "value", t.clock.now() + 60'000));
    CHECK(s.find(h, "k") == std::optional<std::string>("value"));
    CHECK(s.erase(h, "k"));
    CHECK_FALSE(s.find(h, "k"));
    CHECK_FALSE(s.erase(h, "k"));
    auto st = s.stats();
    CHECK(st.hits == 1);
    CHECK(st.misses == 2);
    CHECK(st.puts == 1);
    CHECK(st.items == 0);
}

TEMPLATE_TEST_CASE("put replaces the previous value of a key", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    auto h = hash_key("k");
    REQUIRE(t.store.put(h, "k", "one", t.clock.now() + 60'000));
    REQUIRE(t.store.put(h, "k", std::string(5000, 'x'), t.clock.now() + 60'000));
    CHECK(t.store.find(h, "k") == std::optional<std::string>(std::string(5000, 'x')));
    CHECK(t.store.stats().items == 1);
}

TEMPLATE_TEST_CASE("empty values and binary bytes round-trip", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    std::string binary("\0\xff\x01\n\r", 5);
    REQUIRE(t.store.put(hash_key("e"), "e", "", t.clock.now() + 1000));
    REQUIRE(t.store.put(hash_key("b"), "b", binary, t.clock.now() + 1000));
    CHECK(t.store.find(hash_key("e"), "e") == std::optional<std::string>(""));
    CHECK(t.store.find(hash_key("b"), "b") == std::optional<std::string>(binary));
}

TEMPLATE_TEST_CASE("an expired value is never returned", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    auto h = hash_key("k");
    REQUIRE(t.store.put(h, "k", "v", t.clock.now() + 1000));
    t.clock.advance(999);
    CHECK(t.store.find(h, "k"));
    t.clock.advance(1);
    CHECK_FALSE(t.store.find(h, "k"));
    CHECK(t.store.stats().expirations == 1);
    CHECK(t.store.stats().items == 0);
}

TEMPLATE_TEST_CASE("a put that is already expired is refused", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    CHECK_FALSE(t.store.put(hash_key("k"), "k", "v", t.clock.now()));
    CHECK_FALSE(t.store.find(hash_key("k"), "k"));
}

TEMPLATE_TEST_CASE("a value over max_object_size is refused and counted", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t(8 << 20, 1024);
    auto h = hash_key("big");
    CHECK_FALSE(t.store.put(h, "big", std::string(1025, 'x'), t.clock.now() + 1000));
    CHECK(t.store.put(h, "big", std::string(1024, 'x'), t.clock.now() + 1000));
    CHECK(t.store.stats().refused_too_large == 1);
}

TEMPLATE_TEST_CASE("keys whose hashes collide are never confused", "[store]", MemoryStore, ShmStore, RedisL2, RedisClusterL2) {
    StoreUnderTest<TestType> t;
    const Hash same = 0x1234'5678'9abc'def0ull;
    REQUIRE(t.store.put(same, "alpha", "A", t.clock.now() + 1000));
    REQUIRE(t.store.put(same, "beta", "B", t.clock.now() + 1000));
    CHECK(t.store.find(same, "alpha") == std::optional<std::string>("A"));
    CHECK(t.store.find(same, "beta") == std::optional<std::string>("B"));
    CHECK_FALSE(t.store.find(same, "gamma"));
    CHECK(t.store.erase(same, "alpha"));
    CHECK(t.store.find(same, "beta") == std::optional<std::string>("B"));
}

TEMPLATE_TEST_CASE("filling far past capacity stays within it and keeps recent entries", "[store]", MemoryStore,
                   ShmStore) {
    StoreUnderTest<TestType> t(8 << 20, 64 << 10);
    const auto expiry = t.clock.now() + 60'000;
    std::size_t written = 0;
    int n = 0;
    for (; written < (80u << 20); ++n) {  // 10x the capacity
        auto key = "key-" + std::to_string(n);
        auto size = std::size_t{64} << (n % 11);  // 64 B … 64 KiB
        REQUIRE(t.store.put(hash_key(key), key, value_for(key, size), expiry));
        written += size;
    }
    auto st = t.store.stats();
    CHECK(st.bytes_used <= st.capacity_bytes);
    CHECK(st.capacity_bytes <= (8u << 20));
    CHECK(st.evictions > 0);
    // The most recent entries are there, and every entry that is there is intact.
    for (int k = n - 5; k < n; ++k) {
        auto key = "key-" + std::to_string(k);
        auto v = t.store.find(hash_key(key), key);
        REQUIRE(v);
        CHECK(*v == value_for(key, std::size_t{64} << (k % 11)));
    }
    std::size_t found = 0;
    for (int k = 0; k < n; ++k) {
        auto key = "key-" + std::to_string(k);
        if (auto v = t.store.find(hash_key(key), key)) {
            ++found;
            REQUIRE(*v == value_for(key, std::size_t{64} << (k % 11)));
        }
    }
    CHECK(found == t.store.stats().items);
}
