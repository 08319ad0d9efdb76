// The balancer alone, on a clock the test moves: weighted round robin's order, least
// outstanding, passive ejection with its growing back-off, and readmission.

#include "cachalot/upstream/balancer.hpp"
#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <set>

using namespace cachalot;
using namespace std::chrono_literals;
using upstream::Balancer;

namespace {

config::Upstream make_upstream(std::vector<unsigned> weights, config::Balance balance = config::Balance::RoundRobin) {
    config::Upstream u;
    u.name = "api";
    for (std::size_t i = 0; i < weights.size(); ++i)
        u.servers.push_back({"10.0.0." + std::to_string(i + 1), 80, weights[i]});
    u.balance = balance;
    u.eject_after = 3;
    u.eject_for = std::chrono::milliseconds(10'000);
    return u;
}

struct Fixture {
    explicit Fixture(config::Upstream u) : upstreams{std::move(u)}, metrics({"r"}, {labels()}), balancer(upstreams, metrics, [this] { return now; }) {}
    metrics::UpstreamLabels labels() const {
        std::vector<std::string> servers;
        for (const auto& s : upstreams[0].servers) servers.push_back(s.label());
        return {upstreams[0].name, servers};
    }
    // Picks and releases at once; the server's index.
    std::size_t next() {
        const auto s = balancer.pick(0);
        REQUIRE(s);
        balancer.release(0, *s);
        return *s;
    }
    std::vector<config::Upstream> upstreams;
    Balancer::Clock::time_point now{std::chrono::hours(1000)};
    metrics::Metrics metrics;
    Balancer balancer;
};

}  // namespace

TEST_CASE("balancer: weighted round robin spreads requests by weight, interleaved") {
    Fixture f(make_upstream({5, 1, 1}));
    std::string order;
    for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + f.next());
    CHECK(order == "aabacaa");  // nginx's smooth order: never five a's in a row
    std::map<std::size_t, int> counts;
    for (int i = 0; i < 700; ++i) ++counts[f.next()];
    CHECK(counts[0] == 500);
    CHECK(counts[1] == 100);
    CHECK(counts[2] == 100);
}

TEST_CASE("balancer: least outstanding sends to the server with the fewest requests in flight for its weight") {
    Fixture f(make_upstream({1, 1, 2}, config::Balance::LeastOutstanding));
    const auto first = f.balancer.pick(0);
    const auto second = f.balancer.pick(0);
    const auto third = f.balancer.pick(0);
    REQUIRE((first && second && third));
    // Three picks in flight: every server got one (the weight-2 server is not yet at half load).
    CHECK(std::set<std::size_t>{*first, *second, *third}.size() == 3);
    const auto fourth = f.balancer.pick(0);  // 1/1, 1/1, 1/2: the heavier server is the least loaded
    CHECK(fourth == 2u);
    f.balancer.release(0, 0);  // server 0 idle again: it is now the least loaded
    CHECK(f.balancer.pick(0) == 0u);
}

TEST_CASE("balancer: failures in a row eject a server; it comes back after eject_for, and is ejected for twice as "
          "long if it fails again") {
    Fixture f(make_upstream({1, 1}));
    const std::string healthy = R"(cachalot_upstream_server_healthy{server="10.0.0.2:80",upstream="api"})";
    f.balancer.report(0, 1, true);
    f.balancer.report(0, 1, true);
    f.balancer.report(0, 1, false);  // a success in between: the count starts again
    f.balancer.report(0, 1, true);
    f.balancer.report(0, 1, true);
    CHECK(f.balancer.healthy(0, 1));
    f.balancer.report(0, 1, true);  // three in a row
    CHECK_FALSE(f.balancer.healthy(0, 1));
    CHECK(test::metric_value(f.metrics.serialize(), healthy) == 0);
    for (int i = 0; i < 10; ++i) CHECK(f.next() == 0);  // nothing goes to the ejected server
    f.now += 10s;
    CHECK(f.balancer.healthy(0, 1));
    std::set<std::size_t> seen;
    for (int i = 0; i < 2; ++i) seen.insert(f.next());
    CHECK(seen.size() == 2);  // back in turn
    f.balancer.report(0, 1, true);  // one failure on probation: out again, for 20 s
    CHECK_FALSE(f.balancer.healthy(0, 1));
    f.now += 19s;
    CHECK_FALSE(f.balancer.healthy(0, 1));
    f.now += 1s;
    CHECK(f.balancer.healthy(0, 1));
    f.balancer.report(0, 1, false);  // a success readmits it for good: failures count from 0 again
    f.balancer.report(0, 1, true);
    CHECK(f.balancer.healthy(0, 1));
    const auto metrics = f.metrics.serialize();
    CHECK(test::metric_value(metrics, R"(cachalot_upstream_server_ejections_total{server="10.0.0.2:80",upstream="api"})") == 2);
    CHECK(test::metric_value(metrics, R"(cachalot_upstream_server_failures_total{server="10.0.0.2:80",upstream="api"})") == 7);
}

TEST_CASE("balancer: with every server ejected or skipped there is nothing to pick; one server is never ejected") {
    Fixture two(make_upstream({1, 1}));
    for (int i = 0; i < 3; ++i) two.balancer.report(0, 0, true);
    const std::size_t skip[] = {1};
    CHECK_FALSE(two.balancer.pick(0, skip));  // 0 ejected, 1 skipped
    for (int i = 0; i < 3; ++i) two.balancer.report(0, 1, true);
    CHECK_FALSE(two.balancer.pick(0));

    Fixture one(make_upstream({1}));
    for (int i = 0; i < 10; ++i) one.balancer.report(0, 0, true);
    CHECK(one.balancer.healthy(0, 0));
    CHECK(one.balancer.pick(0) == 0u);
}

TEST_CASE("balancer: consistent hashing keeps a URL on one server, spreads URLs by weight, and moves only an "
          "ejected server's URLs") {
    Fixture f(make_upstream({1, 1, 2}, config::Balance::ConsistentHash));
    auto home = [&](std::uint64_t affinity) {
        const auto s = f.balancer.pick(0, {}, nullptr, affinity);
        REQUIRE(s);
        f.balancer.release(0, *s);
        return *s;
    };
    std::vector<std::size_t> before;
    std::map<std::size_t, int> counts;
    for (int i = 0; i < 4000; ++i) {
        const auto s = home(upstream::affinity_of("http://api/item/" + std::to_string(i)));
        before.push_back(s);
        ++counts[s];
    }
    // The same URL, the same server, whatever came between.
    for (int i = 0; i < 100; ++i) CHECK(home(upstream::affinity_of("http://api/item/7")) == before[7]);
    // By weight, within the ring's unevenness (160 points per unit of weight).
    CHECK(counts[0] > 700);
    CHECK(counts[0] < 1300);
    CHECK(counts[1] > 700);
    CHECK(counts[1] < 1300);
    CHECK(counts[2] > 1600);
    CHECK(counts[2] < 2400);
    SECTION("a server ejected: only its URLs move") {
        for (int i = 0; i < 3; ++i) f.balancer.report(0, 1, true);
        REQUIRE_FALSE(f.balancer.healthy(0, 1));
        int moved = 0;
        for (int i = 0; i < 4000; ++i) {
            const auto s = home(upstream::affinity_of("http://api/item/" + std::to_string(i)));
            CHECK(s != 1);
            if (before[i] != 1) CHECK(s == before[i]);
            moved += s != before[i];
        }
        CHECK(moved == counts[1]);
    }
    SECTION("a server skipped (it could not be reached): the next one on the ring") {
        const auto affinity = upstream::affinity_of("http://api/item/7");
        const std::size_t skip[] = {before[7]};
        const auto s = f.balancer.pick(0, skip, nullptr, affinity);
        REQUIRE(s);
        CHECK(*s != before[7]);
    }
}

TEST_CASE("balancer: a name's addresses become servers; one that goes gets nothing, one that comes takes turns") {
    auto u = make_upstream({2});
    u.servers[0].host = "api.internal";
    Fixture f(std::move(u));
    REQUIRE(f.balancer.size(0) == 1);
    CHECK(f.balancer.target(0, 0).address.empty());  // resolved at each connection until resolved()
    CHECK(f.balancer.resolved(0, 0, {}).empty());  // nothing: no change
    const auto added = f.balancer.resolved(0, 0, {"10.0.0.7", "10.0.0.8"});
    REQUIRE(added.size() == 2);
    CHECK(f.balancer.size(0) == 2);  // the name's own number went to its first address
    std::set<std::string> seen;
    for (int i = 0; i < 4; ++i) seen.insert(f.balancer.target(0, f.next()).address);
    CHECK(seen == std::set<std::string>{"10.0.0.7", "10.0.0.8"});
    CHECK(f.balancer.target(0, added[0]).label == "10.0.0.7:80");
    // 10.0.0.7 goes: its number stays, out of the choice.
    CHECK(f.balancer.resolved(0, 0, {"10.0.0.8"}).empty());
    for (int i = 0; i < 4; ++i) CHECK(f.balancer.target(0, f.next()).address == "10.0.0.8");
    // A new address takes a number no longer used, with a new generation.
    const auto old = f.balancer.target(0, added[0]).generation;
    const auto again = f.balancer.resolved(0, 0, {"10.0.0.8", "10.0.0.9"});
    REQUIRE(again.size() == 1);
    CHECK(f.balancer.target(0, again[0]).address == "10.0.0.9");
    CHECK(f.balancer.size(0) == 2);
    CHECK(again[0] == added[0]);
    CHECK(f.balancer.target(0, again[0]).generation != old);
    const auto state = f.balancer.state(0);
    REQUIRE(state.size() == 2);
    CHECK(state[0].host == "api.internal");
}
