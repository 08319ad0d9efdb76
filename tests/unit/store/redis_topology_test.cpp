// The Redis L2 on a Redis Cluster the test creates (real redis-servers, redis-cli --cluster
// create): keys spread over the slots, one URL's keys in one slot, and MOVED and ASK followed
// while a slot moves between primaries. And under Sentinel (real sentinels): a switch followed,
// and a server that is not a primary never used.

#include "cachalot/cache/fetch_lock.hpp"
#include "cachalot/store/redis_store.hpp"
#include "support/harness.hpp"
#include "sync_redis_store.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace cachalot::store;
using namespace std::chrono_literals;

namespace {

struct ClusterFixture {
    cachalot::test::RedisCluster cluster;
    std::shared_ptr<RedisNodes> nodes = std::make_shared<RedisNodes>();
    SyncRedisStore store;
    ClusterFixture()
        : store(
              "", wall_now, 1 << 20, [] { return 0; },
              [this](RedisOptions& o) {
                  o.cluster = cluster.seeds();
                  o.nodes = nodes;
              }) {}
    WallMillis later() const { return wall_now() + 60'000; }
    const RedisNodeCounters& counters_of(const cachalot::test::RedisServer& server) {
        return nodes->node(server.address());
    }
    std::string id_of(cachalot::test::RedisServer& server) { return server.command({"CLUSTER", "MYID"}); }

    /// Starts moving `rkey`'s slot to another primary the documented way (importing, migrating)
    /// and moves `rkey` itself; the slot stays with its owner until finish_migration.
    struct Migration {
        cachalot::test::RedisServer& from;
        cachalot::test::RedisServer& to;
        std::string slot;
    };
    Migration migrate_key(const std::string& rkey);
    void finish_migration(const Migration& m) {
        for (std::size_t i = 0; i < cluster.size(); ++i)
            cluster.node(i).command({"CLUSTER", "SETSLOT", m.slot, "NODE", id_of(m.to)});
    }
};

// Another primary than `owner`.
cachalot::test::RedisServer& other_primary(cachalot::test::RedisCluster& cluster, cachalot::test::RedisServer& owner) {
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        auto& n = cluster.node(i);
        if (&n != &owner && n.command({"ROLE"}).rfind("master", 0) == 0) return n;
    }
    throw std::runtime_error("no other primary");
}

ClusterFixture::Migration ClusterFixture::migrate_key(const std::string& rkey) {
    const auto slot = cluster.keyslot(rkey);
    auto& from = cluster.owner(slot);
    auto& to = other_primary(cluster, from);
    const auto slot_text = std::to_string(slot);
    REQUIRE(to.command({"CLUSTER", "SETSLOT", slot_text, "IMPORTING", id_of(from)}) == "OK");
    REQUIRE(from.command({"CLUSTER", "SETSLOT", slot_text, "MIGRATING", id_of(to)}) == "OK");
    REQUIRE(from.command({"MIGRATE", "127.0.0.1", std::to_string(to.port()), "", "0", "5000", "KEYS", rkey}) == "OK");
    return {from, to, slot_text};
}

}  // namespace

TEST_CASE("on a Redis Cluster, values spread over every primary and are found wherever they live", "[redis][cluster]") {
    ClusterFixture f;
    for (int i = 0; i < 200; ++i)
        REQUIRE(f.store.put(0, "GET http://api.test/item/" + std::to_string(i), "value " + std::to_string(i), f.later()));
    for (int i = 0; i < 200; ++i)
        CHECK(f.store.find(0, "GET http://api.test/item/" + std::to_string(i)) == "value " + std::to_string(i));
    for (std::size_t i = 0; i < f.cluster.size(); ++i) {
        INFO("node " << f.cluster.node(i).address());
        CHECK(std::stoul(f.cluster.node(i).command({"DBSIZE"})) > 20);  // ~67 each
    }
    CHECK(f.store.async().counters().hits == 200);
    // Queued writes fan out: each goes to its key's node, pipelined per node.
    for (int i = 0; i < 200; ++i)
        REQUIRE(f.store.async().put_later("GET http://api.test/queued/" + std::to_string(i), "q" + std::to_string(i),
                                          f.later()));
    f.store.stats();  // waits for the queue
    for (int i = 0; i < 200; ++i)
        CHECK(f.store.find(0, "GET http://api.test/queued/" + std::to_string(i)) == "q" + std::to_string(i));
    CHECK(f.store.async().counters().write_drops == 0);
    std::uint64_t refreshes = 0;
    for (const auto& [name, c] : f.nodes->list()) refreshes += c->refreshes;
    CHECK(refreshes >= 1);  // the slot map, read at start
}

TEST_CASE("a URL's entry, its Vary variants and its fetch lock share one hash slot", "[redis][cluster]") {
    cachalot::test::RedisCluster cluster(3, 0);
    std::set<unsigned> slots_seen;
    for (int i = 0; i < 20; ++i) {
        const std::string key = "GET http://api.test/page/" + std::to_string(i);
        const auto slot = cluster.keyslot(redis_key("cachalot:", key));
        slots_seen.insert(slot);
        CHECK(hash_slot(redis_key("cachalot:", key)) == slot);  // our CRC16 is Redis'
        for (const auto* variant : {"\x1f" "123.1\x1f" "accept-encoding=gzip", "\x1f" "123.1\x1f" "accept-encoding=br"})
            CHECK(cluster.keyslot(redis_key("cachalot:", key + variant)) == slot);
        CHECK(cluster.keyslot(redis_key("cachalot:", cachalot::cache::FetchLock::lock_name(key))) == slot);
    }
    CHECK(slots_seen.size() > 10);  // different URLs, different slots
}

TEST_CASE("after one slot is resharded, MOVED is followed and the new owner is used from then on", "[redis][cluster]") {
    ClusterFixture f;
    // Nodes that do not name their host (Redis 7): CLUSTER SLOTS gives no host and MOVED ":PORT", both
    // meaning the host the client reached them at.
    for (std::size_t i = 0; i < f.cluster.size(); ++i)
        REQUIRE(f.cluster.node(i).command({"CONFIG", "SET", "cluster-preferred-endpoint-type", "unknown-endpoint"}) ==
                "OK");
    const std::string key = "GET http://api.test/moving";
    const auto rkey = redis_key("cachalot:", key);
    REQUIRE(f.store.put(0, key, "v", f.later()));
    const auto m = f.migrate_key(rkey);
    f.finish_migration(m);
    auto& from = m.from;
    auto& to = m.to;
    REQUIRE(from.command({"GET", rkey}) == "-MOVED " + m.slot + " :" + std::to_string(to.port()));

    CHECK(f.store.find(0, key) == "v");
    CHECK(f.counters_of(from).moved == 1);
    const auto commands_on_to = f.counters_of(to).commands.load();
    CHECK(f.store.find(0, key) == "v");  // straight to the new owner: no second redirect
    CHECK(f.counters_of(from).moved == 1);
    CHECK(f.counters_of(to).commands == commands_on_to + 1);
    CHECK(f.store.async().counters().errors == 0);
}

TEST_CASE("during a slot's migration, ASK is followed with ASKING to the importing node", "[redis][cluster]") {
    ClusterFixture f;
    const std::string key = "GET http://api.test/migrating";
    const auto rkey = redis_key("cachalot:", key);
    REQUIRE(f.store.put(0, key, "v", f.later()));
    REQUIRE(f.store.put(0, key + "\x1f" "variant", "w", f.later()));  // same slot; it will not move
    const auto m = f.migrate_key(rkey);
    auto& from = m.from;
    // The key has moved, the slot has not: the old owner answers ASK.
    REQUIRE(from.command({"GET", rkey}).rfind("-ASK ", 0) == 0);

    CHECK(f.store.find(0, key) == "v");
    CHECK(f.counters_of(from).ask == 1);
    CHECK(f.counters_of(from).moved == 0);
    // A key of that slot not yet migrated is still answered by the old owner, without a redirect.
    CHECK(f.store.find(0, key + "\x1f" "variant") == "w");
    CHECK(f.counters_of(from).ask == 1);
    CHECK(f.store.async().counters().errors == 0);
}

namespace {

struct SentinelFixture {
    cachalot::test::RedisSentinels sentinels;
    std::shared_ptr<RedisNodes> nodes = std::make_shared<RedisNodes>();
    SyncRedisStore store;
    explicit SentinelFixture(std::string master_name = "cachalot")
        : store(
              "", wall_now, 1 << 20, [] { return 0; },
              [this, master_name](RedisOptions& o) {
                  o.sentinel.master_name = master_name;
                  o.sentinel.addresses = sentinels.addresses();
                  o.nodes = nodes;
              }) {}
    WallMillis later() const { return wall_now() + 60'000; }
};

}  // namespace

TEST_CASE("under Sentinel, the store follows a switch of the primary", "[redis][sentinel]") {
    SentinelFixture f;
    REQUIRE(f.store.put(0, "k", "v", f.later()));
    CHECK(f.sentinels.primary().command({"EXISTS", redis_key("cachalot:", "k")}) == "1");
    // A planned failover: the old primary stays up, as a replica.
    REQUIRE(cachalot::test::redis_command(std::stoi(f.sentinels.addresses()[0].substr(10)),
                                          {"SENTINEL", "FAILOVER", "cachalot"}) == "OK");
    REQUIRE(cachalot::test::eventually([&] { return f.sentinels.current_primary() == f.sentinels.replica().address(); },
                                       20s));
    // Writes land on the new primary once the store has followed (each call runs its loop a while).
    CHECK(cachalot::test::eventually([&] {
        return f.store.put(0, "k2", "w", f.later()) &&
               f.sentinels.replica().command({"EXISTS", redis_key("cachalot:", "k2")}) == "1";
    }, 20s));
    CHECK(f.store.find(0, "k") == "v");  // replicated before the switch
    CHECK(f.nodes->node(f.sentinels.replica().address()).failovers == 1);
}

TEST_CASE("under Sentinel, a server whose ROLE is not primary is never used", "[redis][sentinel]") {
    // Sentinels told to watch a replica as the primary of "stale": what a sentinel says in the
    // seconds after a failover it has not yet seen.
    SentinelFixture f("stale");
    auto& replica = f.sentinels.replica();
    for (const auto& address : f.sentinels.addresses())
        REQUIRE(cachalot::test::redis_command(std::stoi(address.substr(10)),
                                              {"SENTINEL", "MONITOR", "stale", "127.0.0.1",
                                               std::to_string(replica.port()), "2"}) == "OK");
    // A value the replica could serve: written through the real primary, replicated.
    SyncRedisStore writer(f.sentinels.primary().address(), wall_now, 1 << 20, [] { return 0; });
    REQUIRE(writer.put(0, "k", "replicated", f.later()));
    const auto rkey = redis_key("cachalot:", "k");
    REQUIRE(cachalot::test::eventually([&] { return replica.command({"EXISTS", rkey}) == "1"; }));
    // The store reaches the replica, asks ROLE first, and sends it nothing: lookups are misses.
    for (int i = 0; i < 5; ++i) CHECK_FALSE(f.store.find(0, "k"));
    CHECK_FALSE(f.store.put(0, "k", "v", f.later()));
    CHECK(f.store.async().counters().hits == 0);
    CHECK(writer.find(0, "k") == "replicated");  // it was there to be served
}

TEST_CASE("while a cluster is down (CLUSTERDOWN) lookups are misses, and it is used again once it recovers",
          "[redis][cluster]") {
    ClusterFixture f;
    for (std::size_t i = 0; i < f.cluster.size(); ++i)
        f.cluster.node(i).command({"CONFIG", "SET", "cluster-require-full-coverage", "yes"});
    // A key on a node that stays up, and a node to kill (with no replica: its slots go uncovered).
    const std::string key = "GET http://api.test/survivor";
    REQUIRE(f.store.put(0, key, "v", f.later()));
    auto& survivor = f.cluster.owner(redis_key("cachalot:", key));
    auto& victim = other_primary(f.cluster, survivor);
    victim.kill();
    REQUIRE(cachalot::test::eventually(
        [&] { return survivor.command({"CLUSTER", "INFO"}).find("cluster_state:fail") != std::string::npos; }, 20s));
    for (int i = 0; i < 5; ++i) CHECK_FALSE(f.store.find(0, key));  // CLUSTERDOWN: a miss, never an error
    CHECK(f.store.async().counters().errors >= 1);
    victim.start();  // rejoins with its nodes.conf: every slot covered again
    CHECK(cachalot::test::eventually([&] { return f.store.find(0, key) == std::optional<std::string>("v"); }, 20s));
}

TEST_CASE("a failing cluster node opens only its own breaker: the other primaries' keys are still hits",
          "[redis][cluster]") {
    ClusterFixture f;
    // Two keys on two different primaries.
    const std::string kept = "GET http://api.test/kept";
    auto& survivor = f.cluster.owner(redis_key("cachalot:", kept));
    std::string lost;
    for (int i = 0; lost.empty(); ++i) {
        const auto k = "GET http://api.test/lost/" + std::to_string(i);
        if (&f.cluster.owner(redis_key("cachalot:", k)) != &survivor) lost = k;
    }
    auto& victim = f.cluster.owner(redis_key("cachalot:", lost));
    REQUIRE(f.store.put(0, kept, "kept", f.later()));
    REQUIRE(f.store.put(0, lost, "lost", f.later()));
    victim.kill();
    for (int i = 0; i < 6; ++i) CHECK_FALSE(f.store.find(0, lost));  // failures, then skipped
    CHECK(f.store.async().counters().breakers_open == 1);
    CHECK(f.counters_of(victim).breakers_open == 1);
    CHECK(f.counters_of(survivor).breakers_open == 0);
    CHECK(f.store.find(0, kept) == "kept");
    // A write to the failed node's slots is dropped and counted; one to the survivor is sent.
    const auto drops = f.store.async().counters().write_drops.load();
    CHECK_FALSE(f.store.async().put_later(lost + "\x1f" "variant", "x", f.later()));  // lost's slot
    CHECK(f.store.async().counters().write_drops == drops + 1);
    CHECK(f.store.async().put_later(kept + "\x1f" "variant", "y", f.later()));
    f.store.stats();  // waits for the queue
    CHECK(f.store.find(0, kept + "\x1f" "variant") == "y");
}
