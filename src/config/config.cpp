#include "cachalot/config/config.hpp"

#include "cachalot/core/cidr.hpp"

#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace cachalot::config {
namespace {

constexpr off_t kMaxConfigBytes = 1024 * 1024;

// Walks the YAML tree, converting values and collecting every problem with its line and key.
class Reader {
public:
    std::vector<ConfigError> errors;

    void error(const YAML::Node& node, const std::string& key, std::string message) {
        int line = node.IsDefined() ? node.Mark().line + 1 : 0;
        errors.push_back({line, key, std::move(message)});
    }

    // Reports keys of `map` that are not in `known` (catches typos that would silently do nothing).
    bool expect_map(const YAML::Node& map, const std::string& path, std::initializer_list<const char*> known) {
        if (!map.IsMap()) {
            error(map, path, "expected a mapping");
            return false;
        }
        for (auto it = map.begin(); it != map.end(); ++it) {
            auto name = it->first.Scalar();
            bool ok = std::any_of(known.begin(), known.end(), [&](const char* k) { return name == k; });
            if (!ok) error(it->first, join(path, name), "unknown key");
        }
        return true;
    }

    // A key given twice in one mapping: yaml-cpp would silently keep the first. Every mapping
    // of the document is checked, wherever it sits.
    void check_duplicate_keys(const YAML::Node& node, const std::string& path) {
        if (node.IsSequence()) {
            for (std::size_t i = 0; i < node.size(); ++i)
                check_duplicate_keys(node[i], path + "[" + std::to_string(i) + "]");
        } else if (node.IsMap()) {
            std::map<std::string, int> first_line;
            for (auto it = node.begin(); it != node.end(); ++it) {
                const auto name = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
                const auto key = join(path, name);
                const int line = it->first.Mark().line + 1;
                if (auto [at, inserted] = first_line.emplace(name, line); !inserted)
                    error(it->first, key, "duplicate key (first given on line " + std::to_string(at->second) + ")");
                check_duplicate_keys(it->second, key);
            }
        }
    }

    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }

    bool scalar(const YAML::Node& node, const std::string& key) {
        if (!node.IsScalar()) {
            error(node, key, "expected a single value");
            return false;
        }
        return true;
    }

    void read_string(const YAML::Node& parent, const std::string& path, const char* name, std::string& out,
                     bool required = false) {
        auto node = parent[name];
        auto key = join(path, name);
        if (!node.IsDefined() || node.IsNull()) {
            if (required) error(parent, key, "is required");
            return;
        }
        if (!scalar(node, key)) return;
        out = node.Scalar();
        if (required && out.empty()) error(node, key, "must not be empty");
    }

    void read_bool(const YAML::Node& parent, const std::string& path, const char* name, bool& out) {
        auto node = parent[name];
        auto key = join(path, name);
        if (!node.IsDefined() || node.IsNull() || !scalar(node, key)) return;
        const auto& v = node.Scalar();
        if (v == "true" || v == "yes" || v == "on") out = true;
        else if (v == "false" || v == "no" || v == "off") out = false;
        else error(node, key, "expected true or false, got '" + v + "'");
    }

    template <class Int>
    void read_uint(const YAML::Node& parent, const std::string& path, const char* name, Int& out,
                   std::uint64_t min, std::uint64_t max) {
        auto node = parent[name];
        auto key = join(path, name);
        if (!node.IsDefined() || node.IsNull() || !scalar(node, key)) return;
        std::uint64_t v = 0;
        const auto& s = node.Scalar();
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size()) {
            error(node, key, "expected a whole number, got '" + s + "'");
            return;
        }
        if (v < min || v > max) {
            error(node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
            return;
        }
        out = static_cast<Int>(v);
    }

    // "250ms", "10s", "2m", "1h"; a bare number is seconds.
    void read_duration(const YAML::Node& parent, const std::string& path, const char* name, Duration& out) {
        auto node = parent[name];
        if (!node.IsDefined() || node.IsNull()) return;
        duration_value(node, join(path, name), out);
    }

    void duration_value(const YAML::Node& node, const std::string& key, Duration& out) {
        if (!scalar(node, key)) return;
        const auto& s = node.Scalar();
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        std::string unit(p, s.data() + s.size());
        std::uint64_t scale = 0;
        if (unit == "ms") scale = 1;
        else if (unit == "s" || unit.empty()) scale = 1000;
        else if (unit == "m") scale = 60'000;
        else if (unit == "h") scale = 3'600'000;
        else if (unit == "d") scale = 86'400'000;
        if (ec != std::errc{} || p == s.data() || scale == 0 || v > 1'000'000'000) {
            error(node, key, "expected a duration such as 500ms, 10s, 5m, 1h or 1d, got '" + s + "'");
            return;
        }
        out = Duration(v * scale);
    }

    // "512", "16KiB", "1MiB", "2GiB" (KB/MB/GB are read as their binary twins).
    void read_size(const YAML::Node& parent, const std::string& path, const char* name, std::size_t& out) {
        auto node = parent[name];
        auto key = join(path, name);
        if (!node.IsDefined() || node.IsNull() || !scalar(node, key)) return;
        const auto& s = node.Scalar();
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        std::string unit(p, s.data() + s.size());
        std::uint64_t scale = 0;
        if (unit.empty() || unit == "B") scale = 1;
        else if (unit == "KiB" || unit == "KB" || unit == "k") scale = 1ull << 10;
        else if (unit == "MiB" || unit == "MB" || unit == "m") scale = 1ull << 20;
        else if (unit == "GiB" || unit == "GB" || unit == "g") scale = 1ull << 30;
        if (ec != std::errc{} || p == s.data() || scale == 0 || v > (1ull << 40) / scale) {
            error(node, key, "expected a size such as 512, 16KiB, 1MiB or 2GiB, got '" + s + "'");
            return;
        }
        out = v * scale;
    }

    void read_endpoint(const YAML::Node& parent, const std::string& path, const char* name, Endpoint& out) {
        auto node = parent[name];
        if (!node.IsDefined() || node.IsNull()) return;
        auto key = join(path, name);
        if (!expect_map(node, key, {"address", "port"})) return;
        read_string(node, key, "address", out.address);
        read_uint(node, key, "port", out.port, 1, 65535);
    }
};

// A host name or address as it may go on the wire (health checks send it as Host): no spaces,
// control characters or URI delimiters.
bool valid_host(std::string_view host) {
    return std::none_of(host.begin(), host.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '"' || c == '\\';
    });
}

// "10.0.0.2", "127.0.0.1:5353", "::1", "[::1]:53".
std::optional<Resolver::Nameserver> parse_nameserver(std::string_view text) {
    Resolver::Nameserver ns;
    std::string_view host = text;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') return std::nullopt;
            port = text.substr(close + 2);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        host = text.substr(0, text.find(':'));
        port = text.substr(text.find(':') + 1);
    }
    unsigned char buffer[16];
    ns.address = std::string(host);
    if (inet_pton(AF_INET, ns.address.c_str(), buffer) != 1 && inet_pton(AF_INET6, ns.address.c_str(), buffer) != 1)
        return std::nullopt;
    if (!port.empty() || (text.size() && text.back() == ':')) {
        unsigned value = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535) return std::nullopt;
        ns.port = static_cast<std::uint16_t>(value);
    }
    return ns;
}

// `tls: true`, or a mapping of its settings (which turns it on).
void read_upstream_tls(Reader& r, const YAML::Node& node, const std::string& key, UpstreamTls& tls) {
    if (!node.IsDefined() || node.IsNull()) return;
    if (node.IsScalar()) {
        const auto& v = node.Scalar();
        if (v == "true" || v == "yes" || v == "on") tls.enabled = true;
        else if (v != "false" && v != "no" && v != "off") r.error(node, key, "expected true, false or a mapping");
        return;
    }
    if (!r.expect_map(node, key, {"server_name", "verify", "ca_file", "certificate", "private_key", "min_version"}))
        return;
    tls.enabled = true;
    r.read_string(node, key, "server_name", tls.server_name);
    if (!valid_host(tls.server_name)) r.error(node["server_name"], key + ".server_name", "expected a host name");
    r.read_bool(node, key, "verify", tls.verify);
    // Files are read when the daemon starts; a missing one is named here, with its line.
    auto file = [&](const char* name, std::string& out) {
        r.read_string(node, key, name, out);
        if (!out.empty() && ::access(out.c_str(), R_OK) != 0)
            r.error(node[name], key + "." + name, "cannot read " + out + ": " + std::strerror(errno));
    };
    file("ca_file", tls.ca_file);
    file("certificate", tls.certificate);
    file("private_key", tls.private_key);
    if (tls.certificate.empty() != tls.private_key.empty())
        r.error(node, key, "certificate and private_key go together (mutual TLS)");
    std::string version;
    r.read_string(node, key, "min_version", version);
    if (version == "1.3") tls.min_version = 13;
    else if (!version.empty() && version != "1.2") r.error(node["min_version"], key + ".min_version", "expected 1.2 or 1.3");
}

void read_upstream(Reader& r, const YAML::Node& node, const std::string& key, Upstream& u) {
    u.line = node.Mark().line + 1;
    if (!r.expect_map(node, key, {"name", "host", "port", "servers", "balance", "eject_after", "eject_for",
                                  "max_in_flight", "health_check", "tls", "connect_timeout", "read_timeout", "max_idle_connections", "idle_timeout"}))
        return;
    r.read_string(node, key, "name", u.name, true);
    read_upstream_tls(r, node["tls"], key + ".tls", u.tls);
    // `port` is also the default port of each of `servers`.
    std::uint16_t port = u.tls.enabled ? 443 : 80;
    r.read_uint(node, key, "port", port, 1, 65535);
    auto servers = node["servers"];
    if (servers.IsDefined() && !servers.IsNull()) {
        const auto skey = key + ".servers";
        if (node["host"].IsDefined()) r.error(node["host"], key + ".host", "give either host or servers, not both");
        if (!servers.IsSequence() || servers.size() == 0) {
            r.error(servers, skey, "expected a list of {host, port, weight}");
        } else {
            for (std::size_t i = 0; i < servers.size(); ++i) {
                const auto ikey = skey + "[" + std::to_string(i) + "]";
                Server s{.host = {}, .port = port};
                if (!r.expect_map(servers[i], ikey, {"host", "port", "weight"})) continue;
                r.read_string(servers[i], ikey, "host", s.host, true);
                if (!valid_host(s.host)) r.error(servers[i]["host"], ikey + ".host", "expected a host name or address");
                r.read_uint(servers[i], ikey, "port", s.port, 1, 65535);
                r.read_uint(servers[i], ikey, "weight", s.weight, 1, 1000);
                u.servers.push_back(std::move(s));
            }
        }
    } else {
        Server s{.host = {}, .port = port};
        r.read_string(node, key, "host", s.host, true);
        if (!valid_host(s.host)) r.error(node["host"], key + ".host", "expected a host name or address");
        u.servers.push_back(std::move(s));
    }
    std::string balance;
    r.read_string(node, key, "balance", balance);
    if (balance == "least_outstanding") u.balance = Balance::LeastOutstanding;
    else if (balance == "consistent_hash") u.balance = Balance::ConsistentHash;
    else if (!balance.empty() && balance != "round_robin")
        r.error(node["balance"], key + ".balance", "expected round_robin, least_outstanding or consistent_hash");
    r.read_uint(node, key, "eject_after", u.eject_after, 0, 1000);
    r.read_duration(node, key, "eject_for", u.eject_for);
    r.read_uint(node, key, "max_in_flight", u.max_in_flight, 0, 10'000'000);
    if (auto hc = node["health_check"]; hc.IsDefined() && !hc.IsNull()) {
        const auto hkey = key + ".health_check";
        auto& h = u.health_check;
        if (r.expect_map(hc, hkey, {"path", "interval", "timeout", "expect", "healthy_after", "unhealthy_after"})) {
            r.read_string(hc, hkey, "path", h.path, true);
            if (!h.path.empty() && (h.path.front() != '/' || h.path.find_first_of(" \r\n\t") != std::string::npos))
                r.error(hc["path"], hkey + ".path", "expected an origin-form path such as /healthz");
            r.read_duration(hc, hkey, "interval", h.interval);
            r.read_duration(hc, hkey, "timeout", h.timeout);
            r.read_uint(hc, hkey, "healthy_after", h.healthy_after, 1, 100);
            r.read_uint(hc, hkey, "unhealthy_after", h.unhealthy_after, 1, 100);
            if (auto e = hc["expect"]; e.IsDefined() && !e.IsNull()) {
                h.expect.clear();
                if (!e.IsSequence() || e.size() == 0) r.error(e, hkey + ".expect", "expected a list of statuses");
                for (std::size_t i = 0; e.IsSequence() && i < e.size(); ++i) {
                    unsigned status = 0;
                    const auto& text = e[i].Scalar();
                    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), status);
                    if (ec != std::errc{} || p != text.data() + text.size() || status < 100 || status > 599)
                        r.error(e[i], hkey + ".expect[" + std::to_string(i) + "]", "expected a status code");
                    else
                        h.expect.push_back(status);
                }
            }
        }
    }
    r.read_duration(node, key, "connect_timeout", u.connect_timeout);
    r.read_duration(node, key, "read_timeout", u.read_timeout);
    r.read_uint(node, key, "max_idle_connections", u.max_idle_connections, 0, 100'000);
    r.read_duration(node, key, "idle_timeout", u.idle_timeout);
}

void read_string_list(Reader& r, const YAML::Node& parent, const std::string& path, const char* name,
                      std::vector<std::string>& out) {
    auto node = parent[name];
    auto key = Reader::join(path, name);
    if (!node.IsDefined() || node.IsNull()) return;
    if (!node.IsSequence()) {
        r.error(node, key, "expected a list");
        return;
    }
    for (std::size_t i = 0; i < node.size(); ++i)
        if (r.scalar(node[i], key + "[" + std::to_string(i) + "]")) out.push_back(node[i].Scalar());
}

void read_route_cache(Reader& r, const YAML::Node& node, const std::string& key, RouteCache& cache) {
    if (!node.IsDefined() || node.IsNull() ||
        !r.expect_map(node, key, {"enabled", "default_ttl", "max_ttl", "status_ttl", "override_origin", "set_cookie",
                                  "stale_while_revalidate", "stale_if_error", "stale_if_disconnected", "grace",
                                  "key"}))
        return;
    r.read_bool(node, key, "enabled", cache.enabled);
    r.read_duration(node, key, "default_ttl", cache.default_ttl);
    r.read_duration(node, key, "max_ttl", cache.max_ttl);
    r.read_bool(node, key, "override_origin", cache.override_origin);
    r.read_duration(node, key, "stale_while_revalidate", cache.stale_while_revalidate);
    r.read_duration(node, key, "stale_if_error", cache.stale_if_error);
    r.read_duration(node, key, "stale_if_disconnected", cache.stale_if_disconnected);
    r.read_duration(node, key, "grace", cache.grace);
    if (auto ttl = node["status_ttl"]; ttl.IsDefined() && !ttl.IsNull()) {
        if (!ttl.IsMap()) {
            r.error(ttl, key + ".status_ttl", "expected a mapping of status to duration, such as {404: 30s}");
        } else {
            for (auto it = ttl.begin(); it != ttl.end(); ++it) {
                const auto status_text = it->first.Scalar();
                unsigned status = 0;
                auto [p, ec] = std::from_chars(status_text.data(), status_text.data() + status_text.size(), status);
                if (ec != std::errc{} || p != status_text.data() + status_text.size() || status < 200 || status > 599) {
                    r.error(it->first, key + ".status_ttl." + status_text, "expected a status code from 200 to 599");
                    continue;
                }
                Duration d{0};
                r.duration_value(it->second, key + ".status_ttl." + status_text, d);
                cache.status_ttl.emplace_back(status, d);
            }
        }
    }
    std::string set_cookie;
    r.read_string(node, key, "set_cookie", set_cookie);
    if (set_cookie == "strip") cache.set_cookie = SetCookiePolicy::Strip;
    else if (set_cookie == "refuse") cache.set_cookie = SetCookiePolicy::Refuse;
    else if (set_cookie == "store") cache.set_cookie = SetCookiePolicy::Store;
    else if (!set_cookie.empty()) r.error(node["set_cookie"], key + ".set_cookie", "expected strip, refuse or store");
    if (auto k = node["key"]; k.IsDefined() && !k.IsNull() &&
                              r.expect_map(k, key + ".key", {"sort_query", "ignore_query_params", "headers", "cookies"})) {
        r.read_bool(k, key + ".key", "sort_query", cache.key.sort_query);
        read_string_list(r, k, key + ".key", "ignore_query_params", cache.key.ignore_query_params);
        read_string_list(r, k, key + ".key", "headers", cache.key.headers);
        read_string_list(r, k, key + ".key", "cookies", cache.key.cookies);
    }
}

// A required list of named entries (upstreams, routes): each read by `read_entry`, names unique.
template <class T, class ReadEntry>
void read_list(Reader& r, const YAML::Node& root, const char* name, const std::string& what, std::vector<T>& out,
               ReadEntry read_entry) {
    auto list = root[name];
    if (!list.IsDefined() || list.IsNull()) return r.error(root, name, "at least one " + what + " is required");
    if (!list.IsSequence()) return r.error(list, name, "expected a list");
    std::set<std::string> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const auto key = std::string(name) + "[" + std::to_string(i) + "]";
        T entry;
        read_entry(list[i], key, entry);
        if (!entry.name.empty() && !seen.insert(entry.name).second)
            r.error(list[i]["name"], key + ".name", "duplicate " + what + " name '" + entry.name + "'");
        out.push_back(std::move(entry));
    }
}

// "host:port" (a port from 1 to 65535).
bool host_port(std::string_view address) {
    const auto colon = address.rfind(':');
    unsigned port = 0;
    const auto* end = address.data() + address.size();
    auto [p, ec] = colon == std::string::npos ? std::from_chars_result{nullptr, std::errc::invalid_argument}
                                              : std::from_chars(address.data() + colon + 1, end, port);
    return colon != 0 && ec == std::errc{} && p == end && port != 0 && port <= 65535;
}

void read_l2(Reader& r, const YAML::Node& node, L2Cache& l2) {
    const std::string key = "cache.l2";
    if (!node.IsDefined() || node.IsNull() ||
        !r.expect_map(node, key, {"address", "cluster", "sentinel", "topology_refresh", "username", "password", "db",
                                  "key_prefix", "pool_size", "connect_timeout", "command_timeout",
                                  "failure_threshold", "breaker_backoff", "write_queue", "max_object_size", "lock",
                                  "lock_ttl", "lock_poll", "purge_resync"}))
        return;
    r.read_string(node, key, "address", l2.address);
    if (!l2.address.empty() && l2.address.rfind("unix:/", 0) != 0 && !host_port(l2.address))
        r.error(node["address"], key + ".address", "expected host:port or unix:/path");
    read_string_list(r, node, key, "cluster", l2.cluster);
    for (std::size_t i = 0; i < l2.cluster.size(); ++i)
        if (!host_port(l2.cluster[i]))
            r.error(node["cluster"][i], key + ".cluster[" + std::to_string(i) + "]", "expected host:port");
    if (const auto s = node["sentinel"]; s.IsDefined() && !s.IsNull() &&
                                         r.expect_map(s, key + ".sentinel", {"master_name", "addresses"})) {
        r.read_string(s, key + ".sentinel", "master_name", l2.sentinel.master_name);
        read_string_list(r, s, key + ".sentinel", "addresses", l2.sentinel.addresses);
        if (l2.sentinel.master_name.empty()) r.error(s, key + ".sentinel.master_name", "required");
        if (l2.sentinel.addresses.empty()) r.error(s, key + ".sentinel.addresses", "at least one sentinel");
        for (std::size_t i = 0; i < l2.sentinel.addresses.size(); ++i)
            if (!host_port(l2.sentinel.addresses[i]))
                r.error(s["addresses"][i], key + ".sentinel.addresses[" + std::to_string(i) + "]", "expected host:port");
    }
    const int kinds = !l2.address.empty() + !l2.cluster.empty() + node["sentinel"].IsDefined();
    if (kinds > 1) r.error(node, key, "address, cluster and sentinel are exclusive: name one Redis deployment");
    r.read_duration(node, key, "topology_refresh", l2.topology_refresh);
    r.read_string(node, key, "username", l2.username);
    r.read_string(node, key, "password", l2.password);
    r.read_uint(node, key, "db", l2.db, 0, 1'000'000);
    if (l2.db != 0 && !l2.cluster.empty()) r.error(node["db"], key + ".db", "a Redis Cluster has database 0 only");
    r.read_string(node, key, "key_prefix", l2.key_prefix);
    // Keys carry a hash tag of their own ({…}, Redis Cluster's slot choice): braces in the
    // prefix would take its place and put every key in one slot.
    if (l2.key_prefix.find_first_of("{}") != std::string::npos)
        r.error(node["key_prefix"], key + ".key_prefix", "must not contain { or }");
    r.read_uint(node, key, "pool_size", l2.pool_size, 1, 64);
    r.read_duration(node, key, "connect_timeout", l2.connect_timeout);
    r.read_duration(node, key, "command_timeout", l2.command_timeout);
    r.read_uint(node, key, "failure_threshold", l2.failure_threshold, 1, 1'000'000);
    r.read_duration(node, key, "breaker_backoff", l2.breaker_backoff);
    r.read_size(node, key, "write_queue", l2.write_queue);
    r.read_size(node, key, "max_object_size", l2.max_object_size);
    r.read_bool(node, key, "lock", l2.lock);
    r.read_duration(node, key, "lock_ttl", l2.lock_ttl);
    r.read_duration(node, key, "lock_poll", l2.lock_poll);
    r.read_duration(node, key, "purge_resync", l2.purge_resync);
    // Waits that are never allowed to be zero.
    for (auto [name, d] : {std::pair{"connect_timeout", l2.connect_timeout}, {"command_timeout", l2.command_timeout},
                           {"lock_ttl", l2.lock_ttl}, {"lock_poll", l2.lock_poll}, {"purge_resync", l2.purge_resync},
                           {"topology_refresh", l2.topology_refresh}})
        if (d.count() <= 0) r.error(node[name], key + "." + name, "must be greater than 0");
}

// A field name: a token (RFC 9110 §5.1).
bool http_token(std::string_view name) {
    static constexpr std::string_view kTchar = "!#$%&'*+-.^_`|~";
    return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || kTchar.find(char(c)) != std::string_view::npos;
    });
}

// A field name a route may strip or set: a token, and none of the fields that frame or define the
// request or that Cachalot writes itself.
std::optional<std::string> field_name_problem(std::string_view name) {
    if (name.empty()) return "is empty";
    if (!http_token(name)) return "is not a valid field name";
    static constexpr std::array<std::string_view, 15> kManaged{
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
        "expect", "via", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "proxy-connection"};
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (std::find(kManaged.begin(), kManaged.end(), lower) != kManaged.end())
        return "is framing or set by Cachalot itself; it cannot be stripped or set";
    return std::nullopt;
}

void read_request_headers(Reader& r, const YAML::Node& node, const std::string& key, RouteRequestHeaders& rh) {
    if (!node.IsDefined() || node.IsNull() || !r.expect_map(node, key, {"strip", "set"})) return;
    if (auto strip = node["strip"]; strip.IsDefined()) {
        rh.strip.clear();
        read_string_list(r, node, key, "strip", rh.strip);
        for (std::size_t i = 0; i < rh.strip.size(); ++i)
            if (auto problem = field_name_problem(rh.strip[i]))
                r.error(strip[i], key + ".strip[" + std::to_string(i) + "]", "'" + rh.strip[i] + "' " + *problem);
    }
    if (auto set = node["set"]; set.IsDefined() && !set.IsNull()) {
        if (!set.IsMap()) {
            r.error(set, key + ".set", "expected a mapping of field name to value");
            return;
        }
        for (auto it = set.begin(); it != set.end(); ++it) {
            const auto name = it->first.Scalar();
            const auto path = key + ".set." + name;
            if (auto problem = field_name_problem(name)) {
                r.error(it->first, path, "'" + name + "' " + *problem);
                continue;
            }
            if (!r.scalar(it->second, path)) continue;
            const auto value = it->second.Scalar();
            const bool visible = std::all_of(value.begin(), value.end(), [](unsigned char c) {
                return c == ' ' || c == '\t' || (c >= 0x21 && c <= 0x7e);
            });
            if (!visible || value.empty() || value.front() == ' ' || value.back() == ' ')
                r.error(it->second, path, "expected a non-empty value of visible ASCII, no surrounding spaces");
            else
                rh.set.emplace_back(name, value);
        }
    }
}

void read_route(Reader& r, const YAML::Node& node, const std::string& key, Route& route) {
    if (!r.expect_map(node, key, {"name", "match", "upstream", "cache", "request_headers"})) return;
    r.read_string(node, key, "name", route.name, true);
    r.read_string(node, key, "upstream", route.upstream, true);
    read_route_cache(r, node["cache"], key + ".cache", route.cache);
    read_request_headers(r, node["request_headers"], key + ".request_headers", route.request_headers);
    auto match = node["match"];
    if (match.IsDefined() && !match.IsNull()) {
        auto mkey = key + ".match";
        if (r.expect_map(match, mkey, {"host", "path_prefix"})) {
            r.read_string(match, mkey, "host", route.match.host);
            r.read_string(match, mkey, "path_prefix", route.match.path_prefix);
            if (route.match.path_prefix.empty() || route.match.path_prefix.front() != '/')
                r.error(match["path_prefix"], mkey + ".path_prefix", "must start with '/'");
            auto& h = route.match.host;
            std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
            if (h.find('*') != std::string::npos && h != "*" && (h.rfind("*.", 0) != 0 || h.size() < 3 ||
                                                                 h.find('*', 1) != std::string::npos))
                r.error(match["host"], mkey + ".host", "a wildcard is only allowed as '*' or a leading '*.'");
        }
    }
}

Config read_config(Reader& r, const YAML::Node& root) {
    Config c;
    if (!r.expect_map(root, "",
                      {"listen", "admin", "purge_method", "workers", "client", "drain_timeout", "upstreams", "resolver",
                       "routes", "cache", "logging"}))
        return c;

    if (auto listen = root["listen"]; listen.IsDefined() && !listen.IsNull()) {
        if (r.expect_map(listen, "listen", {"proxy", "admin", "upgrade_socket"})) {
            r.read_endpoint(listen, "listen", "proxy", c.listen.proxy);
            r.read_endpoint(listen, "listen", "admin", c.listen.admin);
            r.read_string(listen, "listen", "upgrade_socket", c.listen.upgrade_socket);
            if (listen["upgrade_socket"].IsDefined() && !c.listen.upgrade_socket.empty() &&
                c.listen.upgrade_socket.front() != '/')
                r.error(listen["upgrade_socket"], "listen.upgrade_socket", "must be an absolute path");
        }
    }
    if (auto admin = root["admin"]; admin.IsDefined() && !admin.IsNull()) {
        if (r.expect_map(admin, "admin", {"token_file", "max_body_bytes"})) {
            r.read_string(admin, "admin", "token_file", c.admin.token_file);
            if (admin["token_file"].IsDefined()) {
                c.admin.token_file_line = static_cast<int>(admin["token_file"].Mark().line) + 1;
                if (c.admin.token_file.empty() || c.admin.token_file.front() != '/')
                    r.error(admin["token_file"], "admin.token_file", "must be an absolute path");
            }
            r.read_size(admin, "admin", "max_body_bytes", c.admin.max_body_bytes);
        }
    }
    if (auto purge = root["purge_method"]; purge.IsDefined() && !purge.IsNull()) {
        if (r.expect_map(purge, "purge_method", {"allow"})) {
            read_string_list(r, purge, "purge_method", "allow", c.purge_method.allow);
            for (std::size_t i = 0; i < c.purge_method.allow.size(); ++i)
                if (!core::parse_network(c.purge_method.allow[i]))
                    r.error(purge["allow"][i], "purge_method.allow[" + std::to_string(i) + "]",
                            "expected a network such as 10.0.0.0/8, 2001:db8::/32 or one address");
        }
    }
    r.read_uint(root, "", "workers", c.workers, 0, 1024);
    r.read_duration(root, "", "drain_timeout", c.drain_timeout);
    if (auto resolver = root["resolver"]; resolver.IsDefined() && !resolver.IsNull()) {
        if (r.expect_map(resolver, "resolver", {"nameservers", "interval", "timeout"})) {
            std::vector<std::string> servers;
            read_string_list(r, resolver, "resolver", "nameservers", servers);
            for (std::size_t i = 0; i < servers.size(); ++i) {
                auto ns = parse_nameserver(servers[i]);
                if (!ns)
                    r.error(resolver["nameservers"][i], "resolver.nameservers[" + std::to_string(i) + "]",
                            "expected an address, with a port or not: 10.0.0.2, 127.0.0.1:5353, [::1]:53");
                else
                    c.resolver.nameservers.push_back(*ns);
            }
            r.read_duration(resolver, "resolver", "interval", c.resolver.interval);
            r.read_duration(resolver, "resolver", "timeout", c.resolver.timeout);
            if (c.resolver.interval.count() < 100)
                r.error(resolver["interval"], "resolver.interval", "must be at least 100ms");
        }
    }

    if (auto client = root["client"]; client.IsDefined() && !client.IsNull()) {
        if (r.expect_map(client, "client", {"max_header_bytes", "max_body_bytes", "header_timeout", "body_timeout",
                                            "idle_timeout", "send_timeout", "lingering_timeout", "max_connections",
                                            "max_buffered_bytes"})) {
            r.read_size(client, "client", "max_header_bytes", c.client.max_header_bytes);
            r.read_size(client, "client", "max_body_bytes", c.client.max_body_bytes);
            r.read_duration(client, "client", "header_timeout", c.client.header_timeout);
            r.read_duration(client, "client", "body_timeout", c.client.body_timeout);
            r.read_duration(client, "client", "idle_timeout", c.client.idle_timeout);
            r.read_duration(client, "client", "send_timeout", c.client.send_timeout);
            r.read_duration(client, "client", "lingering_timeout", c.client.lingering_timeout);
            r.read_uint(client, "client", "max_connections", c.client.max_connections, 1, 10'000'000);
            r.read_size(client, "client", "max_buffered_bytes", c.client.max_buffered_bytes);
            if (c.client.max_buffered_bytes == 0)
                r.error(client["max_buffered_bytes"], "client.max_buffered_bytes", "must be greater than 0");
        }
    }

    read_list(r, root, "upstreams", "upstream", c.upstreams,
              [&](const YAML::Node& node, const std::string& key, Upstream& u) { read_upstream(r, node, key, u); });
    read_list(r, root, "routes", "route", c.routes, [&](const YAML::Node& node, const std::string& key, Route& route) {
        read_route(r, node, key, route);
        // Cross-references are checked here, where the line is known.
        if (route.upstream.empty()) return;
        auto it = std::find_if(c.upstreams.begin(), c.upstreams.end(),
                               [&](const Upstream& u) { return u.name == route.upstream; });
        if (it == c.upstreams.end())
            r.error(node["upstream"], key + ".upstream", "no upstream named '" + route.upstream + "'");
        else
            route.upstream_index = static_cast<std::size_t>(it - c.upstreams.begin());
    });

    if (auto cache = root["cache"]; cache.IsDefined() && !cache.IsNull()) {
        if (r.expect_map(cache, "cache", {"l1", "l2", "coalesce_timeout", "ttl_jitter", "heuristic_max_ttl", "keep",
                                          "targeted_field", "strip_targeted_fields", "debug_cache_status", "tags"})) {
            r.read_duration(cache, "cache", "coalesce_timeout", c.cache.coalesce_timeout);
            r.read_uint(cache, "cache", "ttl_jitter", c.cache.ttl_jitter, 0, 50);
            read_l2(r, cache["l2"], c.cache.l2);
            r.read_duration(cache, "cache", "heuristic_max_ttl", c.cache.heuristic_max_ttl);
            r.read_duration(cache, "cache", "keep", c.cache.keep);
            r.read_string(cache, "cache", "targeted_field", c.cache.targeted_field);
            r.read_bool(cache, "cache", "strip_targeted_fields", c.cache.strip_targeted_fields);
            r.read_bool(cache, "cache", "debug_cache_status", c.cache.debug_cache_status);
            if (auto tags = cache["tags"];
                tags.IsDefined() && !tags.IsNull() &&
                r.expect_map(tags, "cache.tags", {"header", "strip", "max_count", "max_bytes"})) {
                r.read_string(tags, "cache.tags", "header", c.cache.tags.header);
                if (!http_token(c.cache.tags.header))
                    r.error(tags["header"], "cache.tags.header", "must be a header field name");
                r.read_bool(tags, "cache.tags", "strip", c.cache.tags.strip);
                r.read_uint(tags, "cache.tags", "max_count", c.cache.tags.max_count, 1, 1024);
                r.read_size(tags, "cache.tags", "max_bytes", c.cache.tags.max_bytes);
                if (c.cache.tags.max_bytes == 0 || c.cache.tags.max_bytes > 65536)
                    r.error(tags["max_bytes"], "cache.tags.max_bytes", "must be between 1 and 64KiB");
            }
            if (auto l1 = cache["l1"]; l1.IsDefined() && !l1.IsNull() &&
                                       r.expect_map(l1, "cache.l1", {"path", "size", "max_object_size"})) {
                r.read_string(l1, "cache.l1", "path", c.cache.l1.path);
                if (c.cache.l1.path.empty() || c.cache.l1.path.front() != '/')
                    r.error(l1["path"], "cache.l1.path", "must be an absolute path");
                r.read_size(l1, "cache.l1", "size", c.cache.l1.size);
                r.read_size(l1, "cache.l1", "max_object_size", c.cache.l1.max_object_size);
                if (c.cache.l1.size == 0) {
                    // no L1
                } else if (c.cache.l1.max_object_size == 0)
                    r.error(l1["max_object_size"], "cache.l1.max_object_size", "must be at least 1");
                // Room for the purge table, the index and at least 8 segments that each hold the largest object.
                else if (c.cache.l1.size < 16 * c.cache.l1.max_object_size + (2u << 20))
                    r.error(l1["size"], "cache.l1.size",
                            "too small for max_object_size: needs at least 16 x max_object_size + 2MiB");
            }
        }
    }

    if (auto logging = root["logging"]; logging.IsDefined() && !logging.IsNull()) {
        if (r.expect_map(logging, "logging", {"level", "access_log", "format"})) {
            r.read_string(logging, "logging", "level", c.logging.level);
            static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
            if (!levels.count(c.logging.level))
                r.error(logging["level"], "logging.level",
                        "expected one of trace, debug, info, warn, error, critical, off");
            r.read_bool(logging, "logging", "access_log", c.logging.access_log);
            std::string format = "text";
            r.read_string(logging, "logging", "format", format);
            if (format == "json") c.logging.format = LogFormat::Json;
            else if (format != "text") r.error(logging["format"], "logging.format", "expected text or json");
        }
    }
    return c;
}

// The node at `path` below `root`, or the deepest one that exists on the way (for its line):
// yaml-cpp throws when a lookup goes through a missing or non-map node.
YAML::Node deepest(YAML::Node node, std::initializer_list<const char*> path) {
    for (const char* key : path) {
        if (!node.IsMap() || !node[key].IsDefined()) break;
        node = node[key];
    }
    return node;
}

bool loopback(const std::string& address) {
    return address.rfind("127.", 0) == 0 || address == "::1" || address == "localhost";
}

// The two listeners cannot share a port, and an admin listener others can reach needs a token.
void check_listeners(Reader& r, const YAML::Node& root, const Config& c) {
    if (c.listen.proxy.port == c.listen.admin.port && c.listen.proxy.port != 0)
        r.error(deepest(root, {"listen", "admin", "port"}), "listen.admin.port", "must differ from listen.proxy.port");
    if (!loopback(c.listen.admin.address) && c.admin.token_file.empty())
        r.error(deepest(root, {"listen", "admin", "address"}), "listen.admin.address",
                "is not a loopback address: set admin.token_file, so that only the token's holders can purge");
}

}  // namespace

unsigned Config::worker_count() const {
    if (workers != 0) return workers;
    return std::max(1u, std::thread::hardware_concurrency());
}

ParseResult parse_config(const std::string& yaml_text) {
    ParseResult result;
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        result.errors.push_back({e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg});
        return result;
    }
    Reader r;
    if (!root.IsDefined() || root.IsNull()) {
        r.errors.push_back({0, "", "the configuration is empty"});
    } else {
        try {
            r.check_duplicate_keys(root, "");
            Config c = read_config(r, root);
            if (root.IsMap()) check_listeners(r, root, c);
            if (r.errors.empty()) result.config = std::move(c);
        } catch (const YAML::Exception& e) {
            // A document shape the reader did not foresee: an error, never a crash.
            r.errors.push_back({e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid configuration: " + e.msg});
        }
    }
    std::stable_sort(r.errors.begin(), r.errors.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    result.errors = std::move(r.errors);
    return result;
}

namespace {

// admin.token_file: a small regular file holding the token (a trailing newline is not part of it).
void read_token(Config& c, std::vector<ConfigError>& errors) {
    auto& a = c.admin;
    auto refuse = [&](const std::string& why) { errors.push_back({a.token_file_line, "admin.token_file", why}); };
    struct stat st {};
    if (::stat(a.token_file.c_str(), &st) != 0) return refuse(a.token_file + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size > 4096) return refuse(a.token_file + ": not a regular file of at most 4 KiB");
    std::ifstream in(a.token_file, std::ios::binary);
    std::getline(in, a.token);
    if (!a.token.empty() && a.token.back() == '\r') a.token.pop_back();
    if (a.token.size() < 16) return refuse(a.token_file + ": the token must be at least 16 characters");
    for (unsigned char ch : a.token)
        if (ch <= 0x20 || ch >= 0x7f) return refuse(a.token_file + ": the token must be visible ASCII");
}

}  // namespace

ParseResult load_config(const std::string& path) {
    auto refuse = [](std::string message) {
        ParseResult result;
        result.errors.push_back({0, "", std::move(message)});
        return result;
    };
    // A device or a FIFO would be read forever; a config is a small regular file (a symlink
    // to one, as Kubernetes mounts them, is fine).
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return refuse(std::string("cannot open the file: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return refuse("not a regular file");
    if (st.st_size > kMaxConfigBytes) return refuse("larger than " + std::to_string(kMaxConfigBytes / 1024) + " KiB");
    std::ifstream in(path, std::ios::binary);
    if (!in) return refuse("cannot open the file");
    std::ostringstream text;
    text << in.rdbuf();
    auto result = parse_config(text.str());
    if (result.ok() && !result.config->admin.token_file.empty()) read_token(*result.config, result.errors);
    if (!result.errors.empty()) result.config.reset();
    return result;
}

std::string format_errors(const std::string& file, const std::vector<ConfigError>& errors) {
    std::ostringstream out;
    for (const auto& e : errors) {
        out << file;
        if (e.line > 0) out << ':' << e.line;
        out << ": ";
        if (!e.key.empty()) out << e.key << ": ";
        out << e.message << '\n';
    }
    return out.str();
}

}  // namespace cachalot::config
