// POST /purge bodies: what each asks for, and every refusal with its reason.

#include "server/purge_api.hpp"

#include "cachalot/cache/purge.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using namespace cachalot::server;

namespace {

config::Config with_route() {
    config::Config cfg;
    config::Route route;
    route.name = "api";
    route.match.host = "api.example";
    route.cache.key.ignore_query_params = {"utm_*"};
    cfg.routes.push_back(route);
    return cfg;
}

PurgeOrder order(std::string_view body) {
    auto parsed = parse_purge(body, with_route());
    if (auto* refusal = std::get_if<std::string>(&parsed)) FAIL(*refusal);
    return std::get<PurgeOrder>(parsed);
}

std::string refusal(std::string_view body) {
    auto parsed = parse_purge(body, with_route());
    REQUIRE(std::holds_alternative<std::string>(parsed));
    return std::get<std::string>(parsed);
}

}  // namespace

TEST_CASE("purge api: a URL is normalized as its route's keys are, absolute or with host") {
    auto o = order(R"({"url": "http://API.example:80/items/42?utm_source=x&b=2&a=1"})");
    CHECK(o.kind == cache::PurgeKind::Url);
    CHECK(o.mode == cache::PurgeMode::Hard);
    CHECK(o.what == "http://api.example/items/42?a=1&b=2");
    CHECK(o.scopes == std::vector<std::string>{cache::purge_scope(cache::PurgeKind::Url, "", o.what)});
    CHECK(order(R"({"url": "/items/42?b=2&a=1", "host": "api.example", "soft": true})").what ==
          "http://api.example/items/42?a=1&b=2");
    CHECK(order(R"({"url": "/items/42", "host": "api.example", "soft": true})").mode == cache::PurgeMode::Soft);
}

TEST_CASE("purge api: prefix, tags and all") {
    auto p = order(R"({"prefix": "/items/", "host": "api.example"})");
    CHECK(p.kind == cache::PurgeKind::Prefix);
    CHECK(p.scopes == std::vector<std::string>{cache::purge_scope(cache::PurgeKind::Prefix, "http://api.example",
                                                                  "/items")});
    auto t = order(R"({"tags": ["user:42", "item:7"], "soft": true})");
    CHECK(t.kind == cache::PurgeKind::Tag);
    CHECK(t.scopes.size() == 2);
    CHECK(t.what == "user:42 item:7");
    CHECK(order(R"({"tag": "user:42"})").scopes ==
          std::vector<std::string>{cache::purge_scope(cache::PurgeKind::Tag, "", "user:42")});
    auto all = order(R"({"all": true})");
    CHECK(all.kind == cache::PurgeKind::All);
    CHECK(all.scopes == std::vector<std::string>{"*"});
}

TEST_CASE("purge api: bad bodies are refused with the reason") {
    struct Row {
        const char* body;
        const char* says;
    };
    const Row rows[] = {
        {"{", "not valid JSON"},
        {"[1]", "must be a JSON object"},
        {R"({"tag": "a", "colour": "red"})", "unknown member \"colour\""},
        {R"({})", "exactly one of"},
        {R"({"tag": "a", "all": true})", "exactly one of"},
        {R"({"tag": ""})", "a tag is empty"},
        {R"({"tags": []})", "non-empty array"},
        {R"({"tags": ["a", 1]})", "non-empty array"},
        {R"({"tag": 7})", "\"tag\" must be a string"},
        {R"({"prefix": "items/", "host": "api.example"})", "must start with '/'"},
        {R"({"prefix": "/items"})", "\"host\" is required"},
        {R"({"prefix": "/items", "host": "a b"})", "not a valid host"},
        {R"({"url": "items/42", "host": "api.example"})", "absolute URL"},
        {R"({"url": "/items/42"})", "\"host\" is required"},
        {R"({"url": "http://api.example/x", "host": "api.example"})", "only with a path"},
        {R"({"all": false})", "\"all\" must be true"},
        {R"({"all": true, "soft": "yes"})", "\"soft\" must be true or false"},
        {R"({"tag": "a\u0001b"})", "control"},
    };
    for (const auto& r : rows) {
        INFO(r.body);
        CHECK_THAT(refusal(r.body), Catch::Contains(r.says));
    }
}

TEST_CASE("purge api: applying an order writes the purge table and the answer says what was done") {
    store::MemoryPurgeTable memory;
    metrics::Metrics metrics({"api"}, {"origin"});
    const auto o = order(R"({"tags": ["user:42"], "soft": true})");
    apply_purge(o, memory.table(), 1'790'000'000'000, metrics);
    CHECK(memory.table().read(cache::purge_slot(o.scopes[0])).soft == 1'790'000'000'000);
    CHECK(memory.table().read(cache::purge_slot(o.scopes[0])).hard == 0);
    CHECK(purge_answer(o, 1'790'000'000'000) ==
          "{\"purged\":\"tag\",\"mode\":\"soft\",\"what\":\"user:42\",\"at\":1790000000000}\n");
    CHECK_THAT(metrics.serialize(), Catch::Contains("cachalot_purges_total{kind=\"tag\",mode=\"soft\"} 1"));
}
