// The L2 on Redis Cluster and on Sentinel, through the real binary: nodes sharing a cluster,
// invalidations crossing it, and a primary killed under a steady request stream costing no
// client errors, with L2 hits back once a replica is promoted. Real redis-servers and sentinels
// the tests start.

#include "cachalot/store/redis_store.hpp"
#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace cachalot::test;

namespace {

const Headers kHost{{"Host", "api.test"}};

std::string redis_key_of(const std::string& path) {
    return cachalot::store::redis_key("cachalot:", "GET http://api.test" + path);
}

// Every response fresh for a minute and numbered.
TestOrigin::Handler numbered() {
    auto counter = std::make_shared<std::atomic<int>>(0);
    return [counter](const OriginRequest&) {
        return Reply{.headers = {{"Cache-Control", "max-age=60"}}, .body = "response " + std::to_string(++*counter)};
    };
}

std::string cluster_config(std::uint16_t origin_port, const RedisCluster& cluster, const std::string& extra = "") {
    return proxy_config(origin_port, "  l2: {cluster: " + cluster.seeds_yaml() + ", command_timeout: 2s" + extra + "}\n");
}

std::string sentinel_config(std::uint16_t origin_port, RedisSentinels& s, const std::string& extra = "") {
    std::string list;
    for (const auto& a : s.addresses()) list += (list.empty() ? "\"" : ", \"") + a + "\"";
    return proxy_config(origin_port, "  l2: {sentinel: {master_name: cachalot, addresses: [" + list +
                                         "]}, command_timeout: 2s" + extra + "}\n");
}

bool l2_hit(const Response& r) { return std::string(r["Cache-Status"]).starts_with("cachalot; hit"); }

// GETs of /k/0 … /k/{keys-1} from `threads` clients until stopped, counting failures.
class Stream {
public:
    Stream(std::uint16_t port, int keys, int threads = 2) {
        for (int t = 0; t < threads; ++t)
            clients_.emplace_back([this, port, keys, t] {
                for (int i = t; !stop_; ++i) {
                    try {
                        if (fetch(port, "/k/" + std::to_string(i % keys), "GET", kHost).result_int() != 200) ++errors;
                    } catch (const std::exception&) {
                        ++errors;
                    }
                    ++answered;
                }
            });
    }
    ~Stream() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& c : clients_)
            if (c.joinable()) c.join();
    }
    // Waits until `n` more requests have been answered (or failed).
    void await_requests(int n) {
        const int target = answered + n;
        REQUIRE(eventually([&] { return answered >= target; }, 30s));
    }
    std::atomic<int> errors{0}, answered{0};

private:
    std::atomic<bool> stop_{false};
    std::vector<std::thread> clients_;
};

// Sum of PUBSUB NUMSUB `channel` over the cluster's nodes (classic pub/sub counts per node).
int subscribers(RedisCluster& cluster, const std::string& channel) {
    int n = 0;
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        const auto reply = cluster.node(i).command({"PUBSUB", "NUMSUB", channel});
        n += std::stoi(reply.substr(reply.find('\n') + 1));
    }
    return n;
}

}  // namespace

TEST_CASE("two nodes on a Redis Cluster share entries, and an unsafe request on one drops the other's copy",
          "[l2][cluster]") {
    RedisCluster cluster(3, 0);
    TestOrigin origin(numbered());
    Daemon a(cluster_config(origin.port(), cluster));
    Daemon b(cluster_config(origin.port(), cluster));
    CHECK(fetch(a.port(), "/item", "GET", kHost).body() == "response 1");
    const auto rkey = redis_key_of("/item");
    REQUIRE(eventually([&] { return cluster.command_on_owner(rkey, {"EXISTS", rkey}) == "1"; }));
    const auto on_b = fetch(b.port(), "/item", "GET", kHost);
    CHECK(on_b.body() == "response 1");  // from the cluster, into b's L1
    CHECK(l2_hit(on_b));
    CHECK(origin.request_count() == 1);

    REQUIRE(eventually([&] { return subscribers(cluster, "cachalot:invalidate") == 2; }));
    CHECK(fetch(a.port(), "/item", "POST", kHost, "x").result_int() == 200);  // origin request 2
    // The invalidation crosses the cluster (PUBLISH on one node reaches subscribers on any).
    std::string body;
    CHECK(eventually([&] { return (body = fetch(b.port(), "/item", "GET", kHost).body()) != "response 1"; }));
    CHECK(body == "response 3");
    // b stores its fetch again (L2 writes are asynchronous).
    CHECK(eventually([&] { return cluster.command_on_owner(rkey, {"EXISTS", rkey}) == "1"; }));

    // Per-node series, one per primary.
    const auto metrics = fetch(a.admin_port(), "/metrics").body();
    for (const auto& seed : cluster.seeds())
        CHECK(metrics.find("cachalot_l2_node_commands_total{node=\"" + seed + "\"}") != std::string::npos);
    CHECK(metrics.find("cachalot_l2_node_redirects_total{kind=\"moved\",node=\"") != std::string::npos);
}

TEST_CASE("a cluster primary killed under a request stream costs no client errors, and L2 hits resume once its "
          "replica is promoted",
          "[l2][cluster][failover]") {
    RedisCluster cluster(3, 1);
    TestOrigin origin(numbered());
    // Every lookup reaches Redis; the breaker opens after 2 failures and probes every 200 ms.
    Daemon node(without_l1(cluster_config(origin.port(), cluster, ", failure_threshold: 2, breaker_backoff: 200ms")));
    constexpr int kKeys = 30;
    for (int i = 0; i < kKeys; ++i) REQUIRE(fetch(node.port(), "/k/" + std::to_string(i), "GET", kHost).result_int() == 200);
    const auto rkey = redis_key_of("/k/0");
    REQUIRE(eventually([&] { return cluster.command_on_owner(rkey, {"EXISTS", rkey}) == "1"; }));
    REQUIRE(eventually([&] { return l2_hit(fetch(node.port(), "/k/0", "GET", kHost)); }));
    // The entry has reached the replica too, so that the promoted node has it.
    auto& victim = cluster.owner(rkey);
    REQUIRE(eventually([&] {
        const auto info = victim.command({"INFO", "replication"});
        const auto at = info.find("master_repl_offset:");
        const auto offset = info.substr(at + 19, info.find('\r', at) - at - 19);
        return info.find("offset=" + offset + ",") != std::string::npos;  // the replica's line
    }));

    Stream stream(node.port(), kKeys);
    stream.await_requests(50);
    const auto killed_at = std::chrono::steady_clock::now();
    victim.kill();
    // The cluster promotes the replica (node timeout 500 ms); Cachalot finds it on its own.
    REQUIRE(eventually([&] {
        try {
            return &cluster.owner(rkey) != &victim;
        } catch (const std::exception&) {
            return false;
        }
    }, 20s));
    REQUIRE(eventually([&] { return l2_hit(fetch(node.port(), "/k/0", "GET", kHost)); }, 20s));
    const auto resumed = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    WARN("cluster: L2 hits on the failed primary's slots resumed " << resumed << " s after the kill");
    stream.await_requests(50);
    stream.stop();
    CHECK(stream.errors == 0);
    const auto metrics = fetch(node.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_l2_node_failovers_total{node=\"" + cluster.owner(rkey).address() + "\"}") == 1);
    // The dead primary left the slot map: its breaker no longer counts (no alert left firing).
    CHECK(await_metric(node.admin_port(), "cachalot_l2_breaker_open", 0) == 0);
}

TEST_CASE("under Sentinel, a primary killed under a request stream costs no client errors, and L2 hits resume on "
          "the new primary",
          "[l2][sentinel][failover]") {
    RedisSentinels sentinels;
    TestOrigin origin(numbered());
    Daemon node(without_l1(sentinel_config(origin.port(), sentinels, ", failure_threshold: 2, breaker_backoff: 200ms")));
    constexpr int kKeys = 30;
    for (int i = 0; i < kKeys; ++i) REQUIRE(fetch(node.port(), "/k/" + std::to_string(i), "GET", kHost).result_int() == 200);
    const auto rkey = redis_key_of("/k/0");
    REQUIRE(eventually([&] { return sentinels.primary().command({"EXISTS", rkey}) == "1"; }));
    REQUIRE(eventually([&] { return sentinels.replica().command({"EXISTS", rkey}) == "1"; }));
    REQUIRE(eventually([&] { return l2_hit(fetch(node.port(), "/k/0", "GET", kHost)); }));

    Stream stream(node.port(), kKeys);
    stream.await_requests(50);
    const auto killed_at = std::chrono::steady_clock::now();
    sentinels.primary().kill();
    REQUIRE(eventually([&] { return sentinels.current_primary() == sentinels.replica().address(); }, 30s));
    REQUIRE(eventually([&] { return l2_hit(fetch(node.port(), "/k/0", "GET", kHost)); }, 20s));
    const auto resumed = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    WARN("sentinel: L2 hits resumed " << resumed << " s after the kill");
    stream.await_requests(50);
    stream.stop();
    CHECK(stream.errors == 0);
    const auto metrics = fetch(node.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, "cachalot_l2_node_failovers_total{node=\"" + sentinels.replica().address() + "\"}") == 1);
    CHECK(await_metric(node.admin_port(), "cachalot_l2_breaker_open", 0) == 0);  // the old primary's no longer counts
    // What the node writes now lands on the new primary.
    CHECK(fetch(node.port(), "/new", "GET", kHost).result_int() == 200);
    const auto new_key = redis_key_of("/new");
    CHECK(eventually([&] { return sentinels.replica().command({"EXISTS", new_key}) == "1"; }));
}
