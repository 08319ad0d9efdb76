#include "cachalot/server/router.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using cachalot::server::match_route;

namespace {

config::Route route(std::string name, std::string host, std::string prefix) {
    config::Route r;
    r.name = std::move(name);
    r.match.host = std::move(host);
    r.match.path_prefix = std::move(prefix);
    return r;
}

}  // namespace

TEST_CASE("the first matching route wins") {
    std::vector<config::Route> routes{route("api", "", "/api"), route("api-v2", "", "/api/v2"),
                                      route("all", "*", "/")};
    CHECK(match_route(routes, "x", "/api/v2/users") == 0u);
    CHECK(match_route(routes, "x", "/other") == 2u);
}

TEST_CASE("host matching: exact, any, and leading wildcard") {
    std::vector<config::Route> routes{route("exact", "api.example.com", "/"), route("sub", "*.example.org", "/")};
    CHECK(match_route(routes, "api.example.com", "/") == 0u);
    CHECK(match_route(routes, "a.b.example.org", "/") == 1u);
    CHECK_FALSE(match_route(routes, "example.org", "/"));
    CHECK_FALSE(match_route(routes, "badexample.org", "/"));
    CHECK_FALSE(match_route(routes, "other.com", "/"));
}

TEST_CASE("no route matches → nothing") {
    std::vector<config::Route> routes{route("api", "", "/api")};
    CHECK_FALSE(match_route(routes, "h", "/web"));
}
