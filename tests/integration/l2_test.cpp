// The Redis L2 through the real binary: shared by several nodes, back-filling L1, never
// trusting what Redis holds, and surviving Redis going away. A real redis-server per test.

#include "cachalot/cache/fetch_lock.hpp"
#include "cachalot/store/redis_store.hpp"
#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace cachalot::test;

namespace {

// Every response fresh for a minute, numbered, so a test can tell which fetch it came from, and
// tagged "item".
TestOrigin::Handler numbered() {
    auto counter = std::make_shared<std::atomic<int>>(0);
    return [counter](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}, {"Surrogate-Key", "item"}},
                     .body = "response " + std::to_string(++*counter)};
    };
}

// A generous command_timeout: under sanitizers and a loaded CI machine, a slow answer must not
// count as an outage in tests that are not about outages.
std::string l2_config(std::uint16_t origin_port, const RedisServer& redis, const std::string& l2_extra = "") {
    return proxy_config(origin_port,
                        "  l2: {address: \"" + redis.address() + "\", command_timeout: 2s" + l2_extra + "}\n");
}

// Requests carry the same Host whatever node they reach, as behind a load balancer.
const Headers kHost{{"Host", "api.test"}};
const std::string kKey = "GET http://api.test/item";
const std::string kRedisKey = cachalot::store::redis_key("cachalot:", kKey);
const std::string kRedisLock = cachalot::store::redis_key("cachalot:", cachalot::cache::FetchLock::lock_name(kKey));

// Waits until Redis holds `key` (L2 writes are asynchronous).
std::string await_redis_value(RedisServer& redis, const std::string& key) {
    for (int i = 0; i < 250; ++i) {
        auto v = redis.command({"GET", key});
        if (v != "(nil)") return v;
        std::this_thread::sleep_for(20ms);
    }
    FAIL("Redis never got " << key);
    return {};
}

// `n` concurrent GETs of /item spread over two nodes; their bodies (or what went wrong).
std::vector<std::string> concurrent_gets(Daemon& a, Daemon& b, int n) {
    std::vector<std::thread> clients;
    std::vector<std::string> bodies(n);
    for (int i = 0; i < n; ++i)
        clients.emplace_back([&, i] {
            try {
                bodies[i] = fetch(i % 2 ? a.port() : b.port(), "/item", "GET", kHost).body();
            } catch (const std::exception& e) {
                bodies[i] = e.what();
            }
        });
    for (auto& t : clients) t.join();
    return bodies;
}

}  // namespace

TEST_CASE("a response stored by one cachalot is a hit on another sharing its Redis, and back-fills its L1", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon a(l2_config(origin.port(), redis));
    Daemon b(l2_config(origin.port(), redis));

    auto first = fetch(a.port(), "/item", "GET", kHost);
    CHECK(first.body() == "response 1");
    await_redis_value(redis, kRedisKey);

    auto on_b = fetch(b.port(), "/item", "GET", kHost);
    CHECK(on_b.body() == "response 1");
    CHECK(std::string(on_b["Cache-Status"]).find("cachalot; hit") != std::string::npos);
    CHECK(origin.request_count() == 1);
    CHECK(await_metric(b.admin_port(), "cachalot_l2_hits_total", 1) == 1);

    // The L2 hit back-filled b's L1: the next hit does not ask Redis.
    CHECK(fetch(b.port(), "/item", "GET", kHost).body() == "response 1");
    CHECK(await_metric(b.admin_port(), "cachalot_l1_hits_total", 1) == 1);
    const auto metrics = fetch(b.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_l2_hits_total") == 1);
    CHECK(metric_value(metrics, "cachalot_l2_command_duration_seconds_count") >= 1);
    CHECK(metric_value(metrics, "cachalot_l2_write_queue_depth") == 0);
    CHECK(metric_value(metrics, "cachalot_l2_breaker_open") == 0);
    CHECK(await_metric(a.admin_port(), "cachalot_l2_puts_total", 1) == 1);
    CHECK(origin.request_count() == 1);
}

TEST_CASE("an unsafe request on one node drops the entry from the shared Redis", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon a(l2_config(origin.port(), redis));
    fetch(a.port(), "/item", "GET", kHost);
    await_redis_value(redis, kRedisKey);
    CHECK(fetch(a.port(), "/item", "POST", kHost, "x").result_int() == 200);
    for (int i = 0; i < 250 && redis.command({"EXISTS", kRedisKey}) != "0"; ++i) std::this_thread::sleep_for(20ms);
    CHECK(redis.command({"EXISTS", kRedisKey}) == "0");
}

TEST_CASE("garbage and truncated values in Redis are misses, deleted, never served", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon node(without_l1(l2_config(origin.port(), redis)));  // every lookup reaches Redis

    CHECK(fetch(node.port(), "/item", "GET", kHost).body() == "response 1");
    const auto good = await_redis_value(redis, kRedisKey);
    // With no L1, a hit comes from Redis.
    auto hit = fetch(node.port(), "/item", "GET", kHost);
    CHECK(hit.body() == "response 1");
    CHECK(std::string(hit["Cache-Status"]).find("hit") != std::string::npos);

    std::string flipped = good;
    flipped[flipped.size() - 3] ^= 0x20;  // inside the body: the checksum no longer matches
    const std::vector<std::pair<std::string, std::string>> bad{
        {"truncated", good.substr(0, good.size() - 7)},
        {"a flipped byte", flipped},
        {"garbage", "definitely not an entry"},
        {"an empty value", ""},
        {"only the envelope", good.substr(0, 12)},
    };
    int expected_fetches = 1;
    for (const auto& [what, bytes] : bad) {
        INFO(what);
        redis.command({"SET", kRedisKey, bytes});
        auto res = fetch(node.port(), "/item", "GET", kHost);
        ++expected_fetches;
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "response " + std::to_string(expected_fetches));  // from the origin, not Redis
        CHECK(std::string(res["Cache-Status"]).find("fwd=uri-miss") != std::string::npos);
        CHECK(origin.request_count() == static_cast<std::size_t>(expected_fetches));
        // The bad value was deleted and replaced by the fresh response. Both go through the
        // ordered write queue: once Redis acknowledged this fetch's put, the next SET of a bad
        // value cannot be overwritten by a write still in flight.
        REQUIRE(await_metric(node.admin_port(), "cachalot_l2_puts_total", expected_fetches) == expected_fetches);
        CHECK(redis.command({"GET", kRedisKey}) != bytes);
    }
    CHECK(await_metric(node.admin_port(), "cachalot_l2_corrupt_dropped_total", bad.size()) == bad.size());
}

TEST_CASE("Redis killed under traffic costs no client errors, and once it is back the breaker closes and L2 is used again",
          "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon node(l2_config(origin.port(), redis, ", failure_threshold: 2, breaker_backoff: 300ms"));
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0}, answered{0};
    std::thread traffic([&] {
        for (int i = 0; !stop; ++i) {
            try {
                // New keys (misses: L2 lookups and writes) and a hot one (L1 hits).
                auto res = fetch(node.port(), i % 2 ? "/hot" : "/k" + std::to_string(i), "GET", kHost);
                if (res.result_int() != 200) ++errors;
            } catch (const std::exception&) {
                ++errors;
            }
            ++answered;
        }
    });
    auto wait_for_requests = [&](int n) {
        const int target = answered + n;
        while (answered < target) std::this_thread::sleep_for(10ms);
    };
    wait_for_requests(20);
    redis.kill();
    wait_for_requests(40);
    CHECK(await_metric(node.admin_port(), "cachalot_l2_breaker_open", 1) >= 1);
    redis.start();  // empty: what the node writes from now on shows L2 is in use again
    wait_for_requests(20);
    CHECK(await_metric(node.admin_port(), "cachalot_l2_breaker_open", 0) == 0);
    wait_for_requests(20);
    stop = true;
    traffic.join();
    CHECK(errors == 0);
    CHECK(std::stoi(redis.command({"DBSIZE"})) > 0);
}

TEST_CASE("with cache.l2.lock, a stampede spread over two nodes costs the origin one request", "[l2]") {
    RedisServer redis;
    std::atomic<int> counter{0};
    TestOrigin origin([&](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}},
                     .body = "response " + std::to_string(++counter),
                     .delay = 500ms};
    });
    Daemon a(l2_config(origin.port(), redis, ", lock: true"));
    Daemon b(l2_config(origin.port(), redis, ", lock: true"));
    for (const auto& body : concurrent_gets(a, b, 20)) CHECK(body == "response 1");
    CHECK(origin.request_count() == 1);
}

TEST_CASE("with cache.l2.lock, a lock whose holder died blocks the others only until it expires", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon node(l2_config(origin.port(), redis, ", lock: true, lock_ttl: 5s"));
    // A holder that took the lock and died: nobody releases it; it expires after 800 ms.
    redis.command({"SET", kRedisLock, "dead-node", "PX", "800"});
    auto res = fetch(node.port(), "/item", "GET", kHost);
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "response 1");
    CHECK(origin.request_count() == 1);
    CHECK(redis.command({"EXISTS", kRedisLock}) == "0");
}

TEST_CASE("an unsafe request on one node drops the entry from the other nodes' L1 too", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());
    Daemon a(l2_config(origin.port(), redis));
    Daemon b(l2_config(origin.port(), redis));
    CHECK(fetch(a.port(), "/item", "GET", kHost).body() == "response 1");
    await_redis_value(redis, kRedisKey);
    CHECK(fetch(b.port(), "/item", "GET", kHost).body() == "response 1");  // now in b's own L1 as well
    // b's subscriber is up once Redis counts it (it subscribes at start-up, within a second).
    for (int i = 0; i < 250 && redis.command({"PUBSUB", "NUMSUB", "cachalot:invalidate"}) != "cachalot:invalidate\n2";
         ++i)
        std::this_thread::sleep_for(20ms);

    CHECK(fetch(a.port(), "/item", "POST", kHost, "x").result_int() == 200);  // origin request 2
    // b drops its copy when the invalidation arrives: its next GET goes to the origin.
    std::string body;
    for (int i = 0; i < 250 && (body = fetch(b.port(), "/item", "GET", kHost).body()) == "response 1"; ++i)
        std::this_thread::sleep_for(20ms);
    CHECK(body == "response 3");
}

TEST_CASE("with cache.l2.lock, nodes holding the same stale copy refresh it with one origin request", "[l2]") {
    RedisServer redis;
    std::atomic<int> counter{0};
    // Fresh for 8 s: b reads it from L2 well inside that, however whole seconds fall and however
    // loaded the machine is.
    // The refresh is answered only once the other node is seen waiting on the lock (it asks
    // Redis whether the lock is still held: EXISTS), however late its requests start.
    auto lock_waited_on = [&] {
        return redis.command({"INFO", "commandstats"}).find("cmdstat_exists:") != std::string::npos;
    };
    TestOrigin origin([&](const OriginRequest&) {
        const int n = ++counter;
        if (n > 1) eventually(lock_waited_on, 20s);
        return Reply{.headers = {{"Cache-Control", "max-age=8"}}, .body = "response " + std::to_string(n)};
    });
    Daemon a(l2_config(origin.port(), redis, ", lock: true"));
    Daemon b(l2_config(origin.port(), redis, ", lock: true"));
    CHECK(fetch(a.port(), "/item", "GET", kHost).body() == "response 1");
    await_redis_value(redis, kRedisKey);
    CHECK(fetch(b.port(), "/item", "GET", kHost).body() == "response 1");  // b's L1 has it too
    // Stale on both nodes: observed with only-if-cached, which never asks the origin.
    const Headers probe{{"Host", "api.test"}, {"Cache-Control", "only-if-cached"}};
    for (auto* node : {&a, &b}) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (fetch(node->port(), "/item", "GET", probe).result_int() != 504 &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(50ms);
    }
    REQUIRE(origin.request_count() == 1);

    for (const auto& body : concurrent_gets(a, b, 10)) CHECK(body == "response 2");
    CHECK(origin.request_count() == 2);
}

TEST_CASE("Redis keeps an entry for its freshness plus the longest stale window", "[l2]") {
    RedisServer redis;
    TestOrigin origin(numbered());  // max-age=60
    SECTION("cache.keep (10 min) when nothing is longer") {
        Daemon node(l2_config(origin.port(), redis));
        fetch(node.port(), "/item", "GET", kHost);
        await_redis_value(redis, kRedisKey);
        const auto pttl = std::stoll(redis.command({"PTTL", kRedisKey}));
        CHECK(pttl > 600'000);
        CHECK(pttl <= 660'000);
    }
    SECTION("the route's stale_if_error when it is longer") {
        Daemon node(with_route_cache(l2_config(origin.port(), redis), "{stale_if_error: 1h}"));
        fetch(node.port(), "/item", "GET", kHost);
        await_redis_value(redis, kRedisKey);
        const auto pttl = std::stoll(redis.command({"PTTL", kRedisKey}));
        CHECK(pttl > 3'600'000);
        CHECK(pttl <= 3'660'000);
    }
}

// ---- purges across nodes ----------------------------------------------------------------------

namespace {

bool is_hit(const Response& r) { return std::string(r["Cache-Status"]).starts_with("cachalot; hit"); }

// Fetches /item on `node` until the answer is not a hit, for up to 10 s; whether it stopped being one.
bool becomes_miss(Daemon& node) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!is_hit(fetch(node.port(), "/item", "GET", kHost))) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// Waits until both nodes' subscribers are up (they subscribe at start-up, within a second).
void await_subscribers(RedisServer& redis, const std::string& channel, int n) {
    const auto expected = channel + "\n" + std::to_string(n);
    for (int i = 0; i < 500 && redis.command({"PUBSUB", "NUMSUB", channel}) != expected; ++i)
        std::this_thread::sleep_for(20ms);
    REQUIRE(redis.command({"PUBSUB", "NUMSUB", channel}) == expected);
}

// Two nodes sharing one Redis, both holding /item: a stored it, b read it into its own L1.
struct TwoNodes {
    explicit TwoNodes(const std::string& l2_extra = "")
        : origin(numbered()), a(l2_config(origin.port(), redis, l2_extra)), b(l2_config(origin.port(), redis, l2_extra)) {
        fetch(a.port(), "/item", "GET", kHost);
        await_redis_value(redis, kRedisKey);
        REQUIRE(is_hit(fetch(b.port(), "/item", "GET", kHost)));
    }
    RedisServer redis;
    TestOrigin origin;
    Daemon a, b;
};

}  // namespace

TEST_CASE("a purge on one node reaches the other nodes through Redis", "[l2][purge]") {
    TwoNodes nodes;
    auto& [redis, origin, a, b] = nodes;
    CHECK(fetch(a.admin_port(), "/purge", "POST", {}, R"({"url": "http://api.test/item"})").result_int() == 200);
    CHECK_FALSE(is_hit(fetch(a.port(), "/item", "GET", kHost)));  // this node: at once
    CHECK(becomes_miss(b));
    // Redis holds the purge for nodes that were not listening.
    CHECK(redis.command({"HLEN", cachalot::store::redis_key("cachalot:", "purges")}) == "1");
}

TEST_CASE("prefix and everything purges, hard and soft, reach the other nodes through Redis", "[l2][purge]") {
    struct Row {
        const char* order;
        const char* b_answer;  // how b's next answer starts: a miss for a hard purge, a revalidation for a soft one
    };
    const Row row = GENERATE(Row{R"({"prefix": "/item", "host": "api.test"})", "cachalot; fwd=uri-miss"},
                             Row{R"({"prefix": "/item", "host": "api.test", "soft": true})", "cachalot; fwd=stale"},
                             Row{R"({"all": true})", "cachalot; fwd=uri-miss"},
                             Row{R"({"all": true, "soft": true})", "cachalot; fwd=stale"});
    INFO(row.order);
    TwoNodes nodes;
    auto& [redis, origin, a, b] = nodes;
    CHECK(fetch(a.admin_port(), "/purge", "POST", {}, row.order).result_int() == 200);
    // b learns it through Redis: its next answers stop being hits, and the first that is not one
    // says what the purge made of the stored response.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    Response res = fetch(b.port(), "/item", "GET", kHost);
    while (is_hit(res) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
        res = fetch(b.port(), "/item", "GET", kHost);
    }
    CHECK_THAT(std::string(res["Cache-Status"]), Catch::StartsWith(row.b_answer));
}

TEST_CASE("a node that missed a purge while Redis was down serves a miss within purge_resync once Redis is back",
          "[l2][purge]") {
    TwoNodes nodes(", breaker_backoff: 200ms, purge_resync: 300ms");
    auto& [redis, origin, a, b] = nodes;
    redis.kill();
    CHECK(fetch(a.admin_port(), "/purge", "POST", {}, R"({"url": "http://api.test/item"})").result_int() == 200);
    CHECK(is_hit(fetch(b.port(), "/item", "GET", kHost)));  // b cannot know yet: its L1 still answers
    redis.start();  // empty: only a's own record of the purge can bring it back
    CHECK(becomes_miss(b));
}

TEST_CASE("an application publishing a tag purge on the L2's purge channel purges on every node", "[l2][purge]") {
    TwoNodes nodes;
    auto& [redis, origin, a, b] = nodes;
    await_subscribers(redis, "cachalot:purge", 2);
    CHECK(redis.command({"PUBLISH", "cachalot:purge", R"({"tags": ["item"], "soft": false})"}) == "2");
    CHECK(becomes_miss(a));
    CHECK(becomes_miss(b));
    CHECK(await_metric(b.admin_port(), R"(cachalot_purges_total{kind="tag",mode="hard"})", 1) == 1);
    // A message that is not a purge is refused and logged, and changes nothing.
    CHECK(redis.command({"PUBLISH", "cachalot:purge", "not json"}) == "2");
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (b.output().find("purge message from the L2 channel refused") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    CHECK_THAT(b.output(), Catch::Contains("purge message from the L2 channel refused"));
}
