// What a reload changes (config::compare): the running configuration against the one just
// loaded, section by section, named as the configuration file names them.

#include "cachalot/config/config.hpp"

#include <algorithm>

namespace cachalot::config {
namespace {

// Entries with a name (routes, upstreams): which were added, removed or changed, and whether
// the order changed (routes match first to last).
template <class T, class Same>
void compare_named(const std::vector<T>& before, const std::vector<T>& after, const std::string& section, Same same,
                   std::vector<std::string>& out) {
    auto find = [](const std::vector<T>& list, const std::string& name) {
        return std::find_if(list.begin(), list.end(), [&](const T& x) { return x.name == name; });
    };
    for (const auto& x : after) {
        auto it = find(before, x.name);
        if (it == before.end()) out.push_back(section + ": added " + x.name);
        else if (!same(*it, x)) out.push_back(section + ": changed " + x.name);
    }
    for (const auto& x : before)
        if (find(after, x.name) == after.end()) out.push_back(section + ": removed " + x.name);
    std::vector<std::string> order_before, order_after;
    for (const auto& x : before)
        if (find(after, x.name) != after.end()) order_before.push_back(x.name);
    for (const auto& x : after)
        if (find(before, x.name) != before.end()) order_after.push_back(x.name);
    if (order_before != order_after) out.push_back(section + ": order");
}

Admin without_lines(Admin a) {
    a.token_file_line = 0;
    return a;
}

}  // namespace

bool same_upstream(const Upstream& a, const Upstream& b) {
    auto x = a, y = b;
    x.line = y.line = 0;
    return x == y;
}

Changes compare(const Config& running, const Config& next) {
    Changes c;
    auto check = [](bool same, const char* name, std::vector<std::string>& out) {
        if (!same) out.emplace_back(name);
    };
    // Bound once at start: the sockets, the threads, the shared-memory file, the Redis connections
    // and the log's sinks.
    check(running.listen.proxy == next.listen.proxy, "listen.proxy", c.needs_restart);
    check(running.listen.admin == next.listen.admin, "listen.admin", c.needs_restart);
    check(running.listen.upgrade_socket == next.listen.upgrade_socket, "listen.upgrade_socket", c.needs_restart);
    check(running.worker_count() == next.worker_count(), "workers", c.needs_restart);
    check(running.cache.l1 == next.cache.l1, "cache.l1", c.needs_restart);
    check(running.cache.l2 == next.cache.l2, "cache.l2", c.needs_restart);
    check(running.logging.format == next.logging.format, "logging.format", c.needs_restart);

    compare_named(running.upstreams, next.upstreams, "upstreams", same_upstream, c.changed);
    check(running.resolver == next.resolver, "resolver", c.changed);
    compare_named(running.routes, next.routes, "routes", std::equal_to<Route>{}, c.changed);
    check(running.client == next.client, "client", c.changed);
    check(without_lines(running.admin) == without_lines(next.admin), "admin", c.changed);
    check(running.purge_method == next.purge_method, "purge_method", c.changed);
    check(running.drain_timeout == next.drain_timeout, "drain_timeout", c.changed);
    const auto& a = running.cache;
    const auto& b = next.cache;
    check(a.tags == b.tags, "cache.tags", c.changed);
    check(a.coalesce_timeout == b.coalesce_timeout, "cache.coalesce_timeout", c.changed);
    check(a.ttl_jitter == b.ttl_jitter, "cache.ttl_jitter", c.changed);
    check(a.heuristic_max_ttl == b.heuristic_max_ttl, "cache.heuristic_max_ttl", c.changed);
    check(a.keep == b.keep, "cache.keep", c.changed);
    check(a.targeted_field == b.targeted_field, "cache.targeted_field", c.changed);
    check(a.strip_targeted_fields == b.strip_targeted_fields, "cache.strip_targeted_fields", c.changed);
    check(a.debug_cache_status == b.debug_cache_status, "cache.debug_cache_status", c.changed);
    check(running.logging.level == next.logging.level, "logging.level", c.changed);
    check(running.logging.access_log == next.logging.access_log, "logging.access_log", c.changed);
    // (A key this function does not name yet still counts as a change.)
    if (c.changed.empty() && c.needs_restart.empty()) {
        auto x = running, y = next;
        x.admin.token_file_line = y.admin.token_file_line = 0;
        for (auto* cfg : {&x, &y})
            for (auto& u : cfg->upstreams) u.line = 0;
        if (!(x == y)) c.changed.emplace_back("other");
    }
    return c;
}

}  // namespace cachalot::config
