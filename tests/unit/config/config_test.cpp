#include "cachalot/config/config.hpp"
#include "support/harness.hpp"

#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <optional>

using namespace cachalot::config;

namespace {

const char* kMinimal = R"(
upstreams:
  - name: api
    host: 127.0.0.1
    port: 8081
routes:
  - name: all
    upstream: api
)";

// The single error of a config expected to have exactly one problem.
ConfigError only_error(const std::string& yaml) {
    auto r = parse_config(yaml);
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.errors.size() == 1);
    return r.errors.front();
}

}  // namespace

TEST_CASE("a minimal config gets the documented defaults") {
    auto r = parse_config(kMinimal);
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE(r.ok());
    const auto& c = *r.config;
    CHECK(c.listen.proxy.address == "0.0.0.0");
    CHECK(c.listen.proxy.port == 8080);
    CHECK(c.listen.admin.address == "127.0.0.1");  // admin stays on loopback by default
    CHECK(c.listen.admin.port == 9090);
    CHECK(c.workers == 0);
    CHECK(c.worker_count() >= 1);
    CHECK(c.client.max_header_bytes == 16 * 1024);
    CHECK(c.client.max_body_bytes == 10 * 1024 * 1024);
    CHECK(c.client.max_connections == 10'000);
    CHECK(c.client.max_buffered_bytes == 1024ull * 1024 * 1024);
    CHECK(c.client.header_timeout == std::chrono::seconds(10));
    CHECK(c.client.idle_timeout == std::chrono::seconds(60));
    CHECK(c.drain_timeout == std::chrono::seconds(30));
    REQUIRE(c.upstreams.size() == 1);
    CHECK(c.upstreams[0].connect_timeout == std::chrono::seconds(2));
    CHECK(c.upstreams[0].read_timeout == std::chrono::seconds(30));
    CHECK(c.upstreams[0].max_idle_connections == 64);
    REQUIRE(c.routes.size() == 1);
    CHECK(c.routes[0].match.path_prefix == "/");
    CHECK(c.routes[0].upstream_index == 0);
    CHECK(c.cache.l1.path == "/dev/shm/cachalot-l1");
    CHECK(c.cache.heuristic_max_ttl == std::chrono::hours(1));
    CHECK(c.cache.keep == std::chrono::minutes(10));
    CHECK(c.routes[0].cache.enabled);
    CHECK(c.cache.l1.size == 256u * 1024 * 1024);
    CHECK(c.cache.l1.max_object_size == 1024u * 1024);
    CHECK(c.cache.l2.address.empty());  // no Redis unless configured
    CHECK(c.cache.l2.key_prefix == "cachalot:");
    CHECK(c.cache.l2.pool_size == 2);
    CHECK(c.cache.l2.command_timeout == std::chrono::milliseconds(100));
    CHECK(c.cache.l2.failure_threshold == 5);
    CHECK(c.cache.l2.breaker_backoff == std::chrono::seconds(5));
    CHECK(c.cache.l2.write_queue == 1024);
    CHECK_FALSE(c.cache.l2.lock);
    CHECK(c.cache.coalesce_timeout == std::chrono::seconds(5));
    CHECK(c.cache.ttl_jitter == 0);
    CHECK(c.routes[0].cache.stale_while_revalidate.count() == 0);
    CHECK(c.routes[0].cache.stale_if_error.count() == 0);
    CHECK(c.routes[0].cache.grace.count() == 0);
    CHECK(c.logging.level == "info");
    CHECK(c.logging.access_log);
    CHECK(c.logging.format == LogFormat::Text);
}

TEST_CASE("every key of a full config is read") {
    auto r = parse_config(R"(
listen:
  proxy: {address: 127.0.0.1, port: 8000}
  admin: {address: 0.0.0.0, port: 8001}
admin: {token_file: /run/secrets/cachalot-admin, max_body_bytes: 16KiB}
workers: 3
client:
  max_header_bytes: 8KiB
  max_body_bytes: 2MiB
  max_connections: 500
  max_buffered_bytes: 256MiB
  header_timeout: 500ms
  body_timeout: 2m
  idle_timeout: 1h
  send_timeout: 7
  lingering_timeout: 250ms
drain_timeout: 5s
upstreams:
  - name: a
    host: origin.internal
    port: 9000
    connect_timeout: 100ms
    read_timeout: 3s
    max_idle_connections: 4
    idle_timeout: 20s
  - name: b
    host: 10.0.0.2
routes:
  - name: r1
    match: {host: "*.Example.com", path_prefix: /api}
    upstream: b
    cache:
      enabled: false
      default_ttl: 30s
      max_ttl: 1d
      status_ttl: {404: 10s, 410: 1h}
      override_origin: true
      set_cookie: refuse
      stale_while_revalidate: 30s
      stale_if_error: 1h
      grace: 5m
      key: {sort_query: false, ignore_query_params: ["utm_*"], headers: [X-Tenant], cookies: [region]}
    request_headers: {strip: [X-Debug], set: {X-Edge: "cachalot eu-1"}}
cache:
  l1: {path: /dev/shm/test-l1, size: 64MiB, max_object_size: 512KiB}
  l2:
    address: "redis.internal:6380"
    username: cachalot
    password: secret
    db: 2
    key_prefix: "c1:"
    pool_size: 4
    connect_timeout: 1s
    command_timeout: 50ms
    failure_threshold: 3
    breaker_backoff: 10s
    write_queue: 100
    max_object_size: 2MiB
    lock: true
    lock_ttl: 2s
    lock_poll: 10ms
  coalesce_timeout: 2s
  ttl_jitter: 10
  heuristic_max_ttl: 30m
  keep: 5m
  tags: {header: X-Tags, strip: false, max_count: 8, max_bytes: 1KiB}
logging: {level: debug, access_log: false, format: json}
)");
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE(r.ok());
    const auto& c = *r.config;
    CHECK(c.listen.proxy.port == 8000);
    CHECK(c.listen.admin.address == "0.0.0.0");
    CHECK(c.admin.token_file == "/run/secrets/cachalot-admin");
    CHECK(c.admin.max_body_bytes == 16 * 1024);
    CHECK(c.cache.tags.header == "X-Tags");
    CHECK(c.workers == 3);
    CHECK(c.client.max_header_bytes == 8192);
    CHECK(c.client.max_body_bytes == 2 * 1024 * 1024);
    CHECK(c.client.max_connections == 500);
    CHECK(c.client.max_buffered_bytes == 256u * 1024 * 1024);
    CHECK(c.client.header_timeout == std::chrono::milliseconds(500));
    CHECK(c.client.body_timeout == std::chrono::minutes(2));
    CHECK(c.client.idle_timeout == std::chrono::hours(1));
    CHECK(c.client.send_timeout == std::chrono::seconds(7));
    CHECK(c.client.lingering_timeout == std::chrono::milliseconds(250));
    CHECK(c.drain_timeout == std::chrono::seconds(5));
    CHECK(c.upstreams[0].servers.at(0).host == "origin.internal");
    CHECK(c.upstreams[0].connect_timeout == std::chrono::milliseconds(100));
    CHECK(c.upstreams[0].max_idle_connections == 4);
    CHECK(c.upstreams[0].idle_timeout == std::chrono::seconds(20));
    CHECK(c.upstreams[1].servers.at(0).port == 80);
    CHECK(c.routes[0].match.host == "*.example.com");  // hosts compare lower-case
    CHECK(c.routes[0].match.path_prefix == "/api");
    CHECK(c.routes[0].upstream_index == 1);
    CHECK(c.cache.l1.path == "/dev/shm/test-l1");
    CHECK(c.cache.heuristic_max_ttl == std::chrono::minutes(30));
    CHECK(c.cache.keep == std::chrono::minutes(5));
    const auto& rc = c.routes[0].cache;
    CHECK_FALSE(rc.enabled);
    CHECK(rc.default_ttl == std::chrono::seconds(30));
    CHECK(rc.max_ttl == std::chrono::hours(24));
    REQUIRE(rc.status_ttl.size() == 2);
    CHECK(rc.status_ttl[0] == std::pair<unsigned, Duration>{404, std::chrono::seconds(10)});
    CHECK(rc.status_ttl[1] == std::pair<unsigned, Duration>{410, std::chrono::hours(1)});
    CHECK(rc.override_origin);
    CHECK(rc.set_cookie == SetCookiePolicy::Refuse);
    CHECK(rc.stale_while_revalidate == std::chrono::seconds(30));
    CHECK(rc.stale_if_error == std::chrono::hours(1));
    CHECK(rc.grace == std::chrono::minutes(5));
    const auto& l2 = c.cache.l2;
    CHECK(l2.address == "redis.internal:6380");
    CHECK(l2.username == "cachalot");
    CHECK(l2.password == "secret");
    CHECK(l2.db == 2);
    CHECK(l2.key_prefix == "c1:");
    CHECK(l2.pool_size == 4);
    CHECK(l2.connect_timeout == std::chrono::seconds(1));
    CHECK(l2.command_timeout == std::chrono::milliseconds(50));
    CHECK(l2.failure_threshold == 3);
    CHECK(l2.breaker_backoff == std::chrono::seconds(10));
    CHECK(l2.write_queue == 100);
    CHECK(l2.max_object_size == 2u << 20);
    CHECK(l2.lock);
    CHECK(l2.lock_ttl == std::chrono::seconds(2));
    CHECK(l2.lock_poll == std::chrono::milliseconds(10));
    CHECK(c.cache.coalesce_timeout == std::chrono::seconds(2));
    CHECK(c.cache.ttl_jitter == 10);
    CHECK_FALSE(rc.key.sort_query);
    CHECK(rc.key.ignore_query_params == std::vector<std::string>{"utm_*"});
    CHECK(rc.key.headers == std::vector<std::string>{"X-Tenant"});
    CHECK(rc.key.cookies == std::vector<std::string>{"region"});
    CHECK(c.routes[0].request_headers.strip == std::vector<std::string>{"X-Debug"});
    CHECK(c.routes[0].request_headers.set ==
          std::vector<std::pair<std::string, std::string>>{{"X-Edge", "cachalot eu-1"}});
    CHECK(c.cache.l1.size == 64u << 20);
    CHECK(c.cache.l1.max_object_size == 512u << 10);
    CHECK(c.logging.level == "debug");
    CHECK_FALSE(c.logging.access_log);
    CHECK(c.logging.format == LogFormat::Json);
}

TEST_CASE("a route strips the fields frameworks trust to change an answer, unless told otherwise") {
    auto c = *parse_config(kMinimal).config;
    const auto& strip = c.routes[0].request_headers.strip;
    for (const char* name : {"X-HTTP-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Port",
                             "X-Forwarded-Scheme", "X-Forwarded-Prefix"})
        CHECK(std::find(strip.begin(), strip.end(), name) != strip.end());
    CHECK(c.routes[0].request_headers.set.empty());
    auto none = parse_config(std::string(kMinimal) + "    request_headers: {strip: []}\n");
    REQUIRE(none.ok());
    CHECK(none.config->routes[0].request_headers.strip.empty());
}

TEST_CASE("a route may not strip or set fields that frame the request or that Cachalot writes") {
    for (const char* name : {"Host", "content-length", "Transfer-Encoding", "Connection", "X-Forwarded-For", "Via",
                             "Forwarded"}) {
        INFO(name);
        auto strip = only_error(std::string(kMinimal) + "    request_headers: {strip: [" + name + "]}\n");
        CHECK(strip.key == "routes[0].request_headers.strip[0]");
        CHECK(strip.message == std::string("'") + name + "' is framing or set by Cachalot itself; it cannot be stripped or set");
        auto set = only_error(std::string(kMinimal) + "    request_headers: {set: {" + name + ": x}}\n");
        CHECK(set.key == std::string("routes[0].request_headers.set.") + name);
    }
    auto bad_name = only_error(std::string(kMinimal) + "    request_headers: {strip: [\"X Bad\"]}\n");
    CHECK(bad_name.message == "'X Bad' is not a valid field name");
    auto bad_value = only_error(std::string(kMinimal) + "    request_headers: {set: {X-A: \"a\\r\\nInjected: 1\"}}\n");
    CHECK(bad_value.key == "routes[0].request_headers.set.X-A");
    CHECK(bad_value.line == 9);
}

TEST_CASE("config errors name the line and the key") {
    SECTION("a misspelt key") {
        auto e = only_error(std::string(kMinimal) + "loging: {level: info}\n");
        CHECK(e.line == 9);
        CHECK(e.key == "loging");
        CHECK(e.message == "unknown key");
    }
    SECTION("an L2 address without a port") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {address: redis.internal}\n");
        CHECK(e.line == 10);
        CHECK(e.key == "cache.l2.address");
        CHECK(e.message == "expected host:port or unix:/path");
    }
    SECTION("ttl_jitter over 50 %") {
        auto e = only_error(std::string(kMinimal) + "cache: {ttl_jitter: 80}\n");
        CHECK(e.key == "cache.ttl_jitter");
    }
    SECTION("a zero L2 command timeout") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {address: \"h:1\", command_timeout: 0s}\n");
        CHECK(e.key == "cache.l2.command_timeout");
        CHECK(e.message == "must be greater than 0");
    }
    SECTION("a port out of range") {
        auto e = only_error(std::string(kMinimal) + "listen:\n  proxy: {port: 70000}\n");
        CHECK(e.line == 10);
        CHECK(e.key == "listen.proxy.port");
        CHECK(e.message == "must be between 1 and 65535");
    }
    SECTION("a port that is not a number") {
        auto e = only_error(std::string(kMinimal) + "listen:\n  admin:\n    port: eighty\n");
        CHECK(e.line == 11);
        CHECK(e.key == "listen.admin.port");
        CHECK(e.message == "expected a whole number, got 'eighty'");
    }
    SECTION("a bad duration") {
        auto e = only_error(std::string(kMinimal) + "drain_timeout: 10 minutes\n");
        CHECK(e.key == "drain_timeout");
        CHECK(e.message == "expected a duration such as 500ms, 10s, 5m, 1h or 1d, got '10 minutes'");
    }
    SECTION("a bad size") {
        auto e = only_error(std::string(kMinimal) + "client: {max_body_bytes: 10 tons}\n");
        CHECK(e.key == "client.max_body_bytes");
        CHECK(e.message == "expected a size such as 512, 16KiB, 1MiB or 2GiB, got '10 tons'");
    }
    SECTION("a route naming an unknown upstream") {
        auto e = only_error(R"(upstreams:
  - {name: api, host: h}
routes:
  - name: r
    upstream: apx
)");
        CHECK(e.line == 5);
        CHECK(e.key == "routes[0].upstream");
        CHECK(e.message == "no upstream named 'apx'");
    }
    SECTION("a missing required key") {
        auto e = only_error(R"(upstreams:
  - {name: api}
routes:
  - {name: r, upstream: api}
)");
        CHECK(e.line == 2);
        CHECK(e.key == "upstreams[0].host");
        CHECK(e.message == "is required");
    }
    SECTION("no upstreams") {
        auto e = only_error("routes: []\n");
        CHECK(e.key == "upstreams");
        CHECK(e.message == "at least one upstream is required");
    }
    SECTION("duplicate upstream names") {
        auto e = only_error(R"(upstreams:
  - {name: api, host: a}
  - {name: api, host: b}
routes:
  - {name: r, upstream: api}
)");
        CHECK(e.line == 3);
        CHECK(e.key == "upstreams[1].name");
        CHECK(e.message == "duplicate upstream name 'api'");
    }
    SECTION("a path prefix without a leading slash") {
        auto e = only_error(R"(upstreams: [{name: api, host: a}]
routes:
  - name: r
    upstream: api
    match: {path_prefix: api}
)");
        CHECK(e.key == "routes[0].match.path_prefix");
        CHECK(e.message == "must start with '/'");
    }
    SECTION("a wildcard in the middle of a host") {
        auto e = only_error(R"(upstreams: [{name: api, host: a}]
routes:
  - {name: r, upstream: api, match: {host: "api.*.com"}}
)");
        CHECK(e.key == "routes[0].match.host");
    }
    SECTION("an unknown log level") {
        auto e = only_error(std::string(kMinimal) + "logging: {level: loud}\n");
        CHECK(e.key == "logging.level");
        CHECK(e.message == "expected one of trace, debug, info, warn, error, critical, off");
    }
    SECTION("a boolean that is not one") {
        auto e = only_error(std::string(kMinimal) + "logging: {access_log: maybe}\n");
        CHECK(e.key == "logging.access_log");
        CHECK(e.message == "expected true or false, got 'maybe'");
    }
    SECTION("the admin and proxy listeners on one port") {
        auto e = only_error(std::string(kMinimal) + "listen:\n  proxy: {port: 8000}\n  admin: {port: 8000}\n");
        CHECK(e.key == "listen.admin.port");
        CHECK(e.message == "must differ from listen.proxy.port");
    }
    SECTION("an L1 too small for its largest object") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l1: {size: 8MiB, max_object_size: 1MiB}\n");
        CHECK(e.line == 10);
        CHECK(e.key == "cache.l1.size");
        CHECK(e.message == "too small for max_object_size: needs at least 16 x max_object_size + 2MiB");
    }
    SECTION("a relative L1 path") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l1: {path: cachalot-l1}\n");
        CHECK(e.key == "cache.l1.path");
        CHECK(e.message == "must be an absolute path");
    }
    SECTION("a status TTL for something that is not a status") {
        auto e = only_error(R"(upstreams: [{name: api, host: a}]
routes:
  - name: r
    upstream: api
    cache: {status_ttl: {600: 1s}}
)");
        CHECK(e.key == "routes[0].cache.status_ttl.600");
        CHECK(e.message == "expected a status code from 200 to 599");
    }
    SECTION("an unknown set_cookie policy") {
        auto e = only_error(R"(upstreams: [{name: api, host: a}]
routes:
  - {name: r, upstream: api, cache: {set_cookie: eat}}
)");
        CHECK(e.key == "routes[0].cache.set_cookie");
        CHECK(e.message == "expected strip, refuse or store");
    }
    SECTION("a list where a mapping belongs") {
        auto e = only_error(std::string(kMinimal) + "client: [1, 2]\n");
        CHECK(e.key == "client");
        CHECK(e.message == "expected a mapping");
    }
}

TEST_CASE("every problem of a config is reported at once, in line order") {
    auto r = parse_config(R"(workers: many
upstreams:
  - name: api
    host: a
    port: 0
routes:
  - name: r
    upstream: nope
)");
    REQUIRE(r.errors.size() == 3);
    CHECK(r.errors[0].line == 1);
    CHECK(r.errors[0].key == "workers");
    CHECK(r.errors[1].line == 5);
    CHECK(r.errors[1].key == "upstreams[0].port");
    CHECK(r.errors[2].line == 8);
    CHECK(r.errors[2].key == "routes[0].upstream");
}

TEST_CASE("invalid YAML is reported with its line") {
    auto r = parse_config("upstreams:\n  - name: [unclosed\nroutes: []\n");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line >= 2);
    CHECK(r.errors[0].message.rfind("invalid YAML", 0) == 0);
}

TEST_CASE("an empty config is an error, not a default") {
    auto r = parse_config("");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message == "the configuration is empty");
}

TEST_CASE("format_errors prints file:line: key: message") {
    auto text = format_errors("/etc/cachalot.yaml", {{12, "routes[0].upstream", "no upstream named 'x'"},
                                                      {0, "", "cannot open the file"}});
    CHECK(text == "/etc/cachalot.yaml:12: routes[0].upstream: no upstream named 'x'\n"
                  "/etc/cachalot.yaml: cannot open the file\n");
}

TEST_CASE("load_config reports a file it cannot read") {
    auto r = load_config("/nonexistent/cachalot.yaml");
    REQUIRE(r.errors.size() == 1);
    CHECK_THAT(r.errors[0].message, Catch::StartsWith("cannot open the file"));
}

TEST_CASE("load_config refuses what is not a small regular file, instead of reading it forever") {
    for (const char* path : {"/dev/zero", "/tmp"}) {
        INFO(path);
        auto r = load_config(path);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message == "not a regular file");
    }
    const auto big = cachalot::test::temp_dir() + "/big.yaml";
    std::ofstream(big) << "# " << std::string(2 * 1024 * 1024, 'x') << "\n";
    auto r = load_config(big);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message == "larger than 1024 KiB");
}

TEST_CASE("a key given twice is an error naming both lines, at any depth") {
    auto r = parse_config("workers: 1\nworkers: 2000\n" + std::string(kMinimal));
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 2);
    CHECK(r.errors[0].key == "workers");
    CHECK(r.errors[0].message == "duplicate key (first given on line 1)");

    auto nested = parse_config(std::string(kMinimal) + "client:\n  idle_timeout: 5s\n  idle_timeout: 6s\n");
    REQUIRE(nested.errors.size() == 1);
    CHECK(nested.errors[0].key == "client.idle_timeout");
}

TEST_CASE("the shipped config/cachalot.yaml is valid") {
    auto r = load_config(CACHALOT_SOURCE_DIR "/config/cachalot.yaml");
    INFO(format_errors("config/cachalot.yaml", r.errors));
    REQUIRE(r.ok());
    CHECK(r.config->listen.admin.address == "127.0.0.1");
}

TEST_CASE("the config in deploy/kubernetes/cachalot.yaml is valid and uses the L2") {
    std::optional<std::string> text;
    for (const auto& doc : YAML::LoadAllFromFile(CACHALOT_SOURCE_DIR "/deploy/kubernetes/cachalot.yaml"))
        if (doc["kind"].as<std::string>() == "ConfigMap") text = doc["data"]["cachalot.yaml"].as<std::string>();
    REQUIRE(text);
    auto r = parse_config(*text);
    INFO(format_errors("deploy/kubernetes/cachalot.yaml", r.errors));
    REQUIRE(r.ok());
    CHECK_FALSE(r.config->cache.l2.address.empty());
}

TEST_CASE("a config whose listen.admin is not a mapping is an error, not a crash (found by fuzzing)") {
    auto r = parse_config(std::string(kMinimal) + "listen:\n  proxy: {port: 9090}\n  admin: 9090\n");
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.errors.empty());
}

TEST_CASE("an admin listener off loopback needs admin.token_file, whose token is read and checked") {
    auto e = only_error(std::string(kMinimal) + "listen:\n  admin: {address: 0.0.0.0, port: 9090}\n");
    CHECK(e.line == 10);
    CHECK(e.key == "listen.admin.address");
    CHECK_THAT(e.message, Catch::Contains("set admin.token_file"));
    const auto dir = cachalot::test::temp_dir();
    const auto config = dir + "/c.yaml";
    const auto token = dir + "/token";
    std::ofstream(config) << kMinimal << "listen:\n  admin: {address: 0.0.0.0, port: 9090}\nadmin:\n  token_file: "
                          << token << "\n";
    auto missing = load_config(config);
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].line == 12);
    CHECK(missing.errors[0].key == "admin.token_file");
    std::ofstream(token) << "short\n";
    CHECK_THAT(load_config(config).errors.at(0).message, Catch::Contains("at least 16 characters"));
    std::ofstream(token) << "0123456789abcdef\n";
    auto good = load_config(config);
    REQUIRE(good.ok());
    CHECK(good.config->admin.token == "0123456789abcdef");
}

TEST_CASE("cache.tags: its keys, defaults and bounds") {
    auto defaults = parse_config(kMinimal);
    REQUIRE(defaults.ok());
    CHECK(defaults.config->cache.tags.header == "Surrogate-Key");
    CHECK(defaults.config->cache.tags.strip);
    CHECK(defaults.config->cache.tags.max_count == 64);
    CHECK(defaults.config->cache.tags.max_bytes == 4096);
    auto set = parse_config(std::string(kMinimal) +
                            "cache:\n  tags: {header: X-Tags, strip: false, max_count: 8, max_bytes: 1KiB}\n");
    REQUIRE(set.ok());
    CHECK(set.config->cache.tags.header == "X-Tags");
    CHECK_FALSE(set.config->cache.tags.strip);
    CHECK(set.config->cache.tags.max_count == 8);
    CHECK(set.config->cache.tags.max_bytes == 1024);
    CHECK(only_error(std::string(kMinimal) + "cache:\n  tags: {header: \"X Tags\"}\n").key == "cache.tags.header");
    CHECK(only_error(std::string(kMinimal) + "cache:\n  tags: {max_bytes: 1MiB}\n").key == "cache.tags.max_bytes");
}

TEST_CASE("purge_method.allow takes networks, and names the one that is not") {
    auto good = parse_config(std::string(kMinimal) + "purge_method: {allow: [10.0.0.0/8, \"::1\", 192.0.2.7]}\n");
    REQUIRE(good.ok());
    CHECK(good.config->purge_method.allow.size() == 3);
    CHECK(parse_config(kMinimal).config->purge_method.allow.empty());  // off by default
    auto e = only_error(std::string(kMinimal) + "purge_method:\n  allow: [10.0.0.0/8, 10.0.0.0/40]\n");
    CHECK(e.key == "purge_method.allow[1]");
    CHECK(e.line == 10);
}

TEST_CASE("upstream servers: the list form with weights and the upstream's port as default, the single form, and "
          "their errors") {
    auto r = parse_config(R"(
upstreams:
  - name: api
    port: 8080
    servers:
      - {host: 10.0.0.1, weight: 3}
      - {host: 10.0.0.2, port: 9090}
    balance: least_outstanding
    eject_after: 2
    eject_for: 500ms
  - name: one
    host: origin.internal
routes:
  - name: all
    upstream: api
)");
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE(r.ok());
    const auto& api = r.config->upstreams[0];
    REQUIRE(api.servers.size() == 2);
    CHECK(api.servers[0].label() == "10.0.0.1:8080");
    CHECK(api.servers[0].weight == 3);
    CHECK(api.servers[1].label() == "10.0.0.2:9090");
    CHECK(api.servers[1].weight == 1);
    CHECK(api.balance == Balance::LeastOutstanding);
    CHECK(api.eject_after == 2);
    CHECK(api.eject_for == std::chrono::milliseconds(500));
    const auto& one = r.config->upstreams[1];
    REQUIRE(one.servers.size() == 1);
    CHECK(one.servers[0].label() == "origin.internal:80");
    CHECK(one.balance == Balance::RoundRobin);

    auto upstream = [](const std::string& body) {
        return "upstreams:\n  - name: api\n" + body + "routes:\n  - name: all\n    upstream: api\n";
    };
    SECTION("host and servers together") {
        auto e = only_error(upstream("    host: a\n    servers: [{host: b}]\n"));
        CHECK(e.line == 3);
        CHECK(e.key == "upstreams[0].host");
        CHECK(e.message == "give either host or servers, not both");
    }
    SECTION("an empty list") {
        auto e = only_error(upstream("    servers: []\n"));
        CHECK(e.key == "upstreams[0].servers");
    }
    SECTION("a weight of 0") {
        auto e = only_error(upstream("    servers:\n      - {host: a, weight: 0}\n"));
        CHECK(e.line == 4);
        CHECK(e.key == "upstreams[0].servers[0].weight");
        CHECK(e.message == "must be between 1 and 1000");
    }
    SECTION("a host that could not go on the wire") {
        auto e = only_error(upstream("    servers:\n      - {host: \"a\\r\\nX-Injected: 1\"}\n"));
        CHECK(e.key == "upstreams[0].servers[0].host");
        CHECK(e.message == "expected a host name or address");
        CHECK(only_error(upstream("    host: \"a/b\"\n")).key == "upstreams[0].host");
    }
    SECTION("a server without host") {
        auto e = only_error(upstream("    servers:\n      - {port: 81}\n"));
        CHECK(e.key == "upstreams[0].servers[0].host");
    }
    SECTION("health_check: its keys and defaults") {
        auto h = parse_config(upstream("    host: a\n    health_check: {path: /ping, interval: 2s, expect: [200, 204]}\n"));
        REQUIRE(h.ok());
        const auto& hc = h.config->upstreams[0].health_check;
        CHECK(hc.path == "/ping");
        CHECK(hc.interval == std::chrono::seconds(2));
        CHECK(hc.timeout == std::chrono::seconds(1));
        CHECK(hc.expect == std::vector<unsigned>{200, 204});
        CHECK(hc.healthy_after == 2);
        CHECK(hc.unhealthy_after == 3);
        CHECK(parse_config(kMinimal).config->upstreams[0].health_check.path.empty());  // no checks by default
    }
    SECTION("health_check: a path that is not origin-form") {
        auto e = only_error(upstream("    host: a\n    health_check: {path: \"ping me\"}\n"));
        CHECK(e.key == "upstreams[0].health_check.path");
    }
    SECTION("health_check: a status that is not one") {
        auto e = only_error(upstream("    host: a\n    health_check: {path: /p, expect: [200, 9000]}\n"));
        CHECK(e.key == "upstreams[0].health_check.expect[1]");
    }
    SECTION("an unknown balance") {
        auto e = only_error(upstream("    host: a\n    balance: random\n"));
        CHECK(e.key == "upstreams[0].balance");
        CHECK(e.message == "expected round_robin, least_outstanding or consistent_hash");
    }
}

TEST_CASE("upstream tls: true, or a mapping of its settings; port 443 by default; its errors") {
    auto upstream = [](const std::string& body) {
        return "upstreams:\n  - name: api\n" + body + "routes:\n  - name: all\n    upstream: api\n";
    };
    auto only_error = [](const std::string& yaml) {
        auto r = parse_config(yaml);
        REQUIRE(r.errors.size() == 1);
        return r.errors[0];
    };
    SECTION("off by default") {
        auto r = parse_config(upstream("    host: a\n"));
        REQUIRE(r.ok());
        CHECK_FALSE(r.config->upstreams[0].tls.enabled);
        CHECK(r.config->upstreams[0].servers[0].port == 80);
    }
    SECTION("tls: true verifies against the system store, and the default port is 443") {
        auto r = parse_config(upstream("    host: api.example.com\n    tls: true\n"));
        REQUIRE(r.ok());
        const auto& u = r.config->upstreams[0];
        CHECK(u.tls.enabled);
        CHECK(u.tls.verify);
        CHECK(u.tls.ca_file.empty());
        CHECK(u.tls.server_name.empty());
        CHECK(u.tls.min_version == 12);
        CHECK(u.servers[0].port == 443);
    }
    SECTION("every setting") {
        auto r = parse_config(upstream("    host: 10.0.0.1\n    port: 8443\n    tls: {server_name: api.internal, verify: false, "
                                       "ca_file: /dev/null, certificate: /dev/null, private_key: /dev/null, "
                                       "min_version: \"1.3\"}\n"));
        INFO(format_errors("test.yaml", r.errors));
        REQUIRE(r.ok());
        const auto& t = r.config->upstreams[0].tls;
        CHECK(t.enabled);
        CHECK(t.server_name == "api.internal");
        CHECK_FALSE(t.verify);
        CHECK(t.ca_file == "/dev/null");
        CHECK(t.certificate == "/dev/null");
        CHECK(t.private_key == "/dev/null");
        CHECK(t.min_version == 13);
        CHECK(r.config->upstreams[0].servers[0].port == 8443);
    }
    SECTION("a file that cannot be read is named") {
        auto e = only_error(upstream("    host: a\n    tls: {ca_file: /nonexistent/ca.pem}\n"));
        CHECK(e.key == "upstreams[0].tls.ca_file");
        CHECK(e.message.find("cannot read /nonexistent/ca.pem") == 0);
        CHECK(e.line == 4);
    }
    SECTION("a certificate without its key") {
        auto e = only_error(upstream("    host: a\n    tls: {certificate: /dev/null}\n"));
        CHECK(e.key == "upstreams[0].tls");
    }
    SECTION("an unknown version, key or value") {
        CHECK(only_error(upstream("    host: a\n    tls: {min_version: \"1.1\"}\n")).key == "upstreams[0].tls.min_version");
        CHECK(only_error(upstream("    host: a\n    tls: {sni: x}\n")).key == "upstreams[0].tls.sni");
        CHECK(only_error(upstream("    host: a\n    tls: maybe\n")).key == "upstreams[0].tls");
    }
}

TEST_CASE("resolver: nameservers with or without a port, interval, timeout; the system resolver by default") {
    auto with = [](const std::string& resolver) {
        return std::string(kMinimal) + "resolver: " + resolver + "\n";
    };
    auto d = parse_config(kMinimal);
    REQUIRE(d.ok());
    CHECK(d.config->resolver.nameservers.empty());
    CHECK(d.config->resolver.interval == std::chrono::seconds(30));
    CHECK(d.config->resolver.timeout == std::chrono::seconds(2));
    auto r = parse_config(with("{nameservers: [10.0.0.2, \"127.0.0.1:5353\", \"::1\", \"[::1]:54\"], interval: 5s, timeout: 250ms}"));
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE(r.ok());
    const auto& ns = r.config->resolver.nameservers;
    REQUIRE(ns.size() == 4);
    CHECK((ns[0].address == "10.0.0.2" && ns[0].port == 53));
    CHECK((ns[1].address == "127.0.0.1" && ns[1].port == 5353));
    CHECK((ns[2].address == "::1" && ns[2].port == 53));
    CHECK((ns[3].address == "::1" && ns[3].port == 54));
    CHECK(r.config->resolver.interval == std::chrono::seconds(5));
    CHECK(r.config->resolver.timeout == std::chrono::milliseconds(250));
    for (const char* bad : {"dns.example.com", "10.0.0.2:0", "10.0.0.2:70000", "[::1", "10.0.0.2:"}) {
        auto e = parse_config(with(std::string("{nameservers: [\"") + bad + "\"]}"));
        INFO(bad);
        REQUIRE(e.errors.size() == 1);
        CHECK(e.errors[0].key == "resolver.nameservers[0]");
    }
    auto fast = parse_config(with("{interval: 10ms}"));
    REQUIRE(fast.errors.size() == 1);
    CHECK(fast.errors[0].key == "resolver.interval");
}

// ---- compare (what a reload changes) ----------------------------------------------------------

namespace {

Config parsed(const std::string& yaml) {
    auto r = parse_config(yaml);
    INFO(format_errors("test.yaml", r.errors));
    REQUIRE(r.ok());
    return *r.config;
}

const std::string kTwo = R"(
upstreams:
  - {name: api, host: 127.0.0.1, port: 8081}
  - {name: img, host: 127.0.0.1, port: 8082}
routes:
  - {name: images, match: {path_prefix: /img}, upstream: img}
  - {name: all, upstream: api}
)";

std::string edited(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("compare: the same configuration changes nothing, wherever its parts are defined") {
    const auto base = parsed(kTwo);
    auto c = compare(base, base);
    CHECK(c.changed.empty());
    CHECK(c.needs_restart.empty());
    // Lines moved by a comment: nothing changed.
    c = compare(base, parsed("# a comment\n\n" + kTwo));
    CHECK(c.changed.empty());
    CHECK(c.needs_restart.empty());
}

TEST_CASE("compare names routes and upstreams added, removed, changed and reordered") {
    const auto base = parsed(kTwo);
    auto c = compare(base, parsed(edited(kTwo, "port: 8082", "port: 8083")));
    CHECK(c.changed == std::vector<std::string>{"upstreams: changed img"});
    c = compare(base, parsed(edited(kTwo, "path_prefix: /img", "path_prefix: /images")));
    CHECK(c.changed == std::vector<std::string>{"routes: changed images"});
    c = compare(base, parsed(edited(kTwo, "  - {name: all, upstream: api}\n",
                                    "  - {name: all, upstream: api}\n  - {name: extra, upstream: api}\n")));
    CHECK(c.changed == std::vector<std::string>{"routes: added extra"});
    c = compare(base, parsed(edited(edited(kTwo, "  - {name: images, match: {path_prefix: /img}, upstream: img}\n", ""),
                                    "  - {name: img, host: 127.0.0.1, port: 8082}\n", "")));
    CHECK(c.changed == std::vector<std::string>{"upstreams: removed img", "routes: removed images"});
    c = compare(base, parsed(R"(
upstreams:
  - {name: api, host: 127.0.0.1, port: 8081}
  - {name: img, host: 127.0.0.1, port: 8082}
routes:
  - {name: all, upstream: api}
  - {name: images, match: {path_prefix: /img}, upstream: img}
)"));
    CHECK(c.changed == std::vector<std::string>{"routes: order"});
    CHECK(c.needs_restart.empty());
}

TEST_CASE("compare names the sections that change live and those that need a restart") {
    const auto base = parsed(kTwo);
    auto c = compare(base, parsed(kTwo + "client: {idle_timeout: 5s}\nlogging: {level: debug}\n"
                                         "cache: {coalesce_timeout: 1s, tags: {max_count: 8}}\ndrain_timeout: 1s\n"));
    CHECK(c.changed == std::vector<std::string>{"client", "drain_timeout", "cache.tags", "cache.coalesce_timeout",
                                                "logging.level"});
    CHECK(c.needs_restart.empty());

    c = compare(base, parsed(kTwo + "listen: {proxy: {port: 8000}}\nworkers: 7\ncache: {l1: {size: 64MiB}, "
                                    "l2: {address: 127.0.0.1:6379}}\nlogging: {format: json}\n"));
    CHECK(c.needs_restart ==
          std::vector<std::string>{"listen.proxy", "workers", "cache.l1", "cache.l2", "logging.format"});
}

TEST_CASE("same_upstream ignores where an upstream is defined, nothing else") {
    const auto base = parsed(kTwo);
    auto moved = base.upstreams[0];
    moved.line += 10;
    CHECK(same_upstream(base.upstreams[0], moved));
    moved.servers[0].weight = 3;
    CHECK_FALSE(same_upstream(base.upstreams[0], moved));
}

TEST_CASE("the L2 on a Redis Cluster or under Sentinel") {
    SECTION("cluster seed nodes") {
        auto r = parse_config(std::string(kMinimal) +
                              "cache:\n  l2: {cluster: [\"10.0.0.1:7000\", \"10.0.0.2:7000\"], topology_refresh: 2s}\n");
        REQUIRE(r.config);
        const auto& l2 = r.config->cache.l2;
        CHECK(l2.cluster == std::vector<std::string>{"10.0.0.1:7000", "10.0.0.2:7000"});
        CHECK(l2.topology_refresh == std::chrono::seconds(2));
        CHECK(l2.enabled());
    }
    SECTION("sentinel") {
        auto r = parse_config(std::string(kMinimal) +
                              "cache:\n  l2:\n    sentinel: {master_name: main, addresses: [\"s1:26379\", \"s2:26379\"]}\n");
        REQUIRE(r.config);
        const auto& l2 = r.config->cache.l2;
        CHECK(l2.sentinel.master_name == "main");
        CHECK(l2.sentinel.addresses == std::vector<std::string>{"s1:26379", "s2:26379"});
        CHECK(l2.enabled());
    }
    SECTION("address and cluster together") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {address: \"h:1\", cluster: [\"h:2\"]}\n");
        CHECK(e.line == 10);
        CHECK(e.key == "cache.l2");
        CHECK(e.message == "address, cluster and sentinel are exclusive: name one Redis deployment");
    }
    SECTION("a cluster seed without a port") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {cluster: [\"h:1\", \"h\"]}\n");
        CHECK(e.key == "cache.l2.cluster[1]");
        CHECK(e.message == "expected host:port");
    }
    SECTION("a database other than 0 on a cluster") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {cluster: [\"h:1\"], db: 3}\n");
        CHECK(e.key == "cache.l2.db");
    }
    SECTION("sentinel without its master name") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2:\n    sentinel: {addresses: [\"s:26379\"]}\n");
        CHECK(e.key == "cache.l2.sentinel.master_name");
        CHECK(e.line == 11);
    }
    SECTION("braces in the key prefix (they would replace the keys' hash tags)") {
        auto e = only_error(std::string(kMinimal) + "cache:\n  l2: {address: \"h:1\", key_prefix: \"{app}:\"}\n");
        CHECK(e.key == "cache.l2.key_prefix");
    }
}
