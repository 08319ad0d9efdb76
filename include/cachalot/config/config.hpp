#pragma once
// Cachalot's configuration: plain structs with documented defaults, parsed from YAML.
// Every default here is listed in the README's configuration reference.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cachalot::config {

using Duration = std::chrono::milliseconds;

/// An address and a port to listen on.
struct Endpoint {
    std::string address;
    std::uint16_t port = 0;
    bool operator==(const Endpoint&) const = default;
};

struct Listeners {
    Endpoint proxy{"0.0.0.0", 8080};
    /// Admin endpoints (/metrics, /healthz, /readyz, /purge) stay on loopback unless configured
    /// otherwise.
    Endpoint admin{"127.0.0.1", 9090};
    /// A Unix socket where the running process hands its listening sockets to a successor
    /// started with --upgrade (a zero-downtime restart). Empty: no hand-over.
    std::string upgrade_socket;
    bool operator==(const Listeners&) const = default;
};

/// Who may use the admin endpoints that change state (/purge).
struct Admin {
    /// A file holding the token (a Kubernetes Secret or systemd credential, say): when set, those
    /// endpoints need "Authorization: Bearer <token>". Required when the admin listener is not
    /// on loopback. load_config reads it into `token`.
    std::string token_file;
    int token_file_line = 0;  // where it was set, for messages
    std::string token;
    std::size_t max_body_bytes = 64 * 1024;  // larger admin request bodies → 413
    bool operator==(const Admin&) const = default;
};

/// Limits and timeouts applied to every client connection.
struct ClientLimits {
    std::size_t max_header_bytes = 16 * 1024;       // larger request head → 431
    std::size_t max_body_bytes = 10 * 1024 * 1024;  // larger request body → 413
    Duration header_timeout{10'000};  // from a request's first byte to the end of its head
    Duration body_timeout{30'000};    // to read a request body
    Duration idle_timeout{60'000};    // keep-alive connection waiting for its next request
    Duration send_timeout{30'000};    // to write a response
    Duration lingering_timeout{2'000};  // after refusing a request, how long to drain its rest
    std::size_t max_connections = 10'000;  // client connections open at once, node-wide; more are closed at accept
    /// Body bytes held in memory at once for all clients together: request bodies being read,
    /// responses being fetched or written. A request or response that would pass it gets 503.
    std::size_t max_buffered_bytes = 1024ull * 1024 * 1024;
    bool operator==(const ClientLimits&) const = default;
};

/// An origin server.
/// One origin server of an upstream.
struct Server {
    std::string host;
    std::uint16_t port = 80;
    unsigned weight = 1;  // its share of requests against the others'
    std::string label() const { return host + ":" + std::to_string(port); }  // (metrics, logs)
    bool operator==(const Server&) const = default;
};

/// Active health checks of an upstream's servers: a GET of `path` every `interval`.
struct HealthCheck {
    std::string path;  // empty: no active checks
    Duration interval{5'000};
    Duration timeout{1'000};
    std::vector<unsigned> expect{200};  // statuses that count as healthy
    unsigned healthy_after = 2;         // passes in a row that bring a failing server back
    unsigned unhealthy_after = 3;       // failures in a row that take a server out
    bool operator==(const HealthCheck&) const = default;
};

/// TLS to an upstream's servers (OpenSSL). Verification is on unless turned off: the chain
/// against `ca_file` (or the system store), the name against `server_name` (or each server's
/// host; an address is checked against the certificate's IP entries).
struct UpstreamTls {
    bool enabled = false;
    std::string server_name;  // SNI and the name verified; empty: each server's host (no SNI for an address)
    bool verify = true;
    std::string ca_file;      // PEM; empty: the system store (ca-certificates)
    std::string certificate;  // PEM client certificate, for mutual TLS (with private_key)
    std::string private_key;
    int min_version = 12;     // TLS 1.2 or 1.3 (12, 13)
    bool operator==(const UpstreamTls&) const = default;
};

/// How an upstream's requests are spread over its servers.
enum class Balance {
    RoundRobin,        // in turn, by weight (smooth weighted round robin, as nginx's)
    LeastOutstanding,  // to the server with the fewest requests in flight for its weight
    ConsistentHash,    // by the request's normalized URL on a hash ring: a URL keeps its server
};

struct Upstream {
    std::string name;
    /// At least one: `servers:`, or the single `host:`/`port:` form.
    std::vector<Server> servers;
    Balance balance = Balance::RoundRobin;
    /// Passive health: after this many failures in a row (connect errors, timeouts, broken or
    /// 5xx responses) a server gets no requests for `eject_for`, doubled each time it fails
    /// again after coming back (at most 32 times). 0: never. An upstream of one server never
    /// ejects it (as nginx): there would be nothing left to send to.
    unsigned eject_after = 5;
    Duration eject_for{10'000};
    /// Requests in flight to this upstream (all servers, all workers) beyond which the next
    /// gets 503 at once, so that a slow origin cannot tie up every connection. 0: no cap.
    std::size_t max_in_flight = 0;
    HealthCheck health_check;
    UpstreamTls tls;
    Duration connect_timeout{2'000};  // for the TCP connection, and again for the TLS handshake
    Duration read_timeout{30'000};          // for the whole response once the request is sent
    std::size_t max_idle_connections = 64;  // per worker thread
    Duration idle_timeout{30'000};          // pooled connections unused for longer are closed
    int line = 0;  // where it was defined, for messages
    bool operator==(const Upstream&) const = default;
};

/// Which requests a route takes: first match wins.
struct RouteMatch {
    std::string host;         // empty or "*" = any; "*.example.com" = any subdomain; else exact
    std::string path_prefix = "/";
    bool operator==(const RouteMatch&) const = default;
};

/// What becomes of a response that sets cookies.
enum class SetCookiePolicy {
    Strip,   // stored without its Set-Cookie (the client that caused the fetch still gets it)
    Refuse,  // not stored at all (nginx's and Varnish's default)
    Store,   // stored with Set-Cookie, replayed to everyone: only for cookies meant for all users
};

/// What enters a route's cache key besides the normalized URL.
struct RouteKey {
    bool sort_query = true;
    std::vector<std::string> ignore_query_params;  // names, or prefixes ending in '*' ("utm_*")
    std::vector<std::string> headers;              // request headers added to the key
    std::vector<std::string> cookies;              // request cookies (by name) added to the key
    bool operator==(const RouteKey&) const = default;
};

/// A route's caching rules.
struct RouteCache {
    bool enabled = true;  // off: every request is forwarded, nothing stored (Cache-Status fwd=bypass)
    Duration default_ttl{0};  // freshness for responses that say nothing (0: none, heuristics apply)
    Duration max_ttl{0};      // cap on every freshness lifetime (0: no cap)
    std::vector<std::pair<unsigned, Duration>> status_ttl;  // freshness by status when the origin says nothing (404: 30s)
    bool override_origin = false;  // default_ttl / status_ttl replace the origin's own freshness
    SetCookiePolicy set_cookie = SetCookiePolicy::Strip;
    /// Stale windows for responses that do not set their own (RFC 5861); 0: none.
    Duration stale_while_revalidate{0};  // serve stale at once, revalidate in the background
    Duration stale_if_error{0};          // serve stale when the origin fails (5xx, unreachable, timeout)
    /// Serve a stored response up to this long past its freshness when the origin cannot be
    /// reached at all (refused, reset, or no answer before read_timeout), unless it says
    /// must-revalidate, proxy-revalidate, no-cache or s-maxage (RFC 9111 §4.2.4). 0: off.
    Duration stale_if_disconnected{std::chrono::seconds(10)};
    /// Serve a stored response up to this long past its freshness when the origin fails,
    /// whatever its directives say (Varnish's grace). 0: off.
    Duration grace{0};
    RouteKey key;
    bool operator==(const RouteCache&) const = default;
};

/// Request fields a route removes or sets before the request is keyed and forwarded, so that the
/// cache key and Vary see what the origin sees.
struct RouteRequestHeaders {
    /// Unkeyed fields that common frameworks trust to change what they answer (the method, the
    /// path, the scheme or port in generated links): a client could otherwise make the origin
    /// answer for something else under this URL's key. Giving `strip` replaces this list.
    std::vector<std::string> strip{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
                                   "X-Original-URL",         "X-Rewrite-URL", "X-Forwarded-Port",
                                   "X-Forwarded-Scheme",     "X-Forwarded-Ssl", "X-Forwarded-Prefix",
                                   "X-Forwarded-Server",     "X-Host"};
    std::vector<std::pair<std::string, std::string>> set;  // name, value: replaces what the client sent
    bool operator==(const RouteRequestHeaders&) const = default;
};

struct Route {
    std::string name;
    RouteMatch match;
    std::string upstream;
    std::size_t upstream_index = 0;  // resolved by validation
    RouteCache cache;
    RouteRequestHeaders request_headers;
    bool operator==(const Route&) const = default;
};

/// The shared-memory L1 store (see include/cachalot/store/shm_store.hpp).
struct L1Cache {
    std::string path = "/dev/shm/cachalot-l1";    // one file, shared by every process using it
    std::size_t size = 256 * 1024 * 1024;          // the whole file, index included; never grows; 0: no L1
    std::size_t max_object_size = 1024 * 1024;     // larger entries are not stored
    bool operator==(const L1Cache&) const = default;
};

/// The shared Redis L2 (see include/cachalot/store/redis_store.hpp). Off unless `address` is set.
/// A Redis primary found through Sentinel (cache.l2.sentinel).
struct L2Sentinel {
    std::string master_name;              // the name the sentinels monitor the primary under
    std::vector<std::string> addresses;   // the sentinels, "host:port"
    bool operator==(const L2Sentinel&) const = default;
};

/// Exactly one of address, cluster and sentinel names the Redis deployment (none: no L2).
struct L2Cache {
    std::string address;         // one Redis: "host:port" or "unix:/path/to/socket"
    std::vector<std::string> cluster;  // Redis Cluster seed nodes, "host:port"
    L2Sentinel sentinel;               // or a primary with replicas under Sentinel
    /// How often the cluster's slot map, or Sentinel's primary, is read again while every node
    /// answers (a redirect or a failing node makes it sooner).
    Duration topology_refresh{5'000};
    std::string username;        // ACL user (Redis 6+); empty: AUTH with the password alone
    std::string password;        // empty: no AUTH
    unsigned db = 0;
    std::string key_prefix = "cachalot:";
    unsigned pool_size = 2;                    // connections per worker thread
    Duration connect_timeout{500};
    Duration command_timeout{100};             // a slower answer counts as a miss
    unsigned failure_threshold = 5;            // consecutive failures that open the breaker
    Duration breaker_backoff{5'000};           // how long L2 is skipped once the breaker opens
    std::size_t write_queue = 1024;            // pending writes per worker; more are dropped
    std::size_t max_object_size = 1024 * 1024; // larger entries are not sent to Redis
    /// Cross-node coalescing: the node that fetches a cold key holds a Redis lock (SET NX PX)
    /// for at most lock_ttl; the other nodes wait for the entry in L2 instead of fetching.
    bool lock = false;
    Duration lock_ttl{5'000};
    Duration lock_poll{20};  // how often a waiting node looks for the holder's entry in L2
    /// How often each node re-reads the purge table in Redis (and pushes purges Redis missed):
    /// the longest a node that missed a purge message serves a purged entry once Redis answers.
    Duration purge_resync{2'000};
    bool enabled() const { return !address.empty() || !cluster.empty() || !sentinel.master_name.empty(); }
    bool operator==(const L2Cache&) const = default;
};

/// Purge tags that responses name (purged with POST /purge {"tag": …} on the admin listener).
struct Tags {
    /// The field naming a response's tags, space-separated (Fastly's habit). Cache-Tag
    /// (comma-separated) and Cache-Groups (RFC 9875) are always read too.
    std::string header = "Surrogate-Key";
    bool strip = true;              // remove those fields from responses sent to clients
    std::size_t max_count = 64;     // tags kept per response; more are cut and counted
    std::size_t max_bytes = 4096;   // bytes of tags kept per response, all together
    bool operator==(const Tags&) const = default;
};

struct Cache {
    L1Cache l1;
    L2Cache l2;
    Tags tags;
    /// How long a request waits for another request's fetch of the same key before going to
    /// the origin on its own.
    Duration coalesce_timeout{5'000};
    /// Stored freshness lifetimes are moved by up to ± this percentage, at random, so that
    /// entries filled together do not all expire together. 0: exact lifetimes.
    unsigned ttl_jitter = 0;
    /// Cap on the heuristic freshness (10 % of the time since Last-Modified) given to responses
    /// without explicit freshness; 0 disables heuristics.
    Duration heuristic_max_ttl{3'600'000};
    /// How long a response with validators (ETag, Last-Modified) is kept after it goes stale,
    /// so that it can be revalidated with a conditional request instead of fetched again.
    Duration keep{600'000};
    /// RFC 9213 targeted cache control: this field (if set), then CDN-Cache-Control, when present
    /// in a response, stands in for its Cache-Control and Expires for this cache's own policy.
    std::string targeted_field;
    /// Remove those fields from responses sent to clients (they are meant for this tier only).
    bool strip_targeted_fields = false;
    /// Add the cache key to Cache-Status (key=…): for debugging, it reveals how keys are built.
    bool debug_cache_status = false;
    bool operator==(const Cache&) const = default;
};

enum class LogFormat { Text, Json };

struct Logging {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off
    bool access_log = true;
    LogFormat format = LogFormat::Text;
    bool operator==(const Logging&) const = default;
};

/// The PURGE method on the proxy listener (Varnish's and nginx's habit): off unless `allow` names
/// the client networks that may use it.
struct PurgeMethod {
    /// CIDR networks ("10.0.0.0/8", "::1/128", or one address). Empty: PURGE is not special and
    /// is forwarded like any other method. Otherwise PURGE purges the URL (hard) for clients in
    /// them and gets 403 from everyone else; it is never forwarded.
    std::vector<std::string> allow;
    bool operator==(const PurgeMethod&) const = default;
};

/// How upstream host names are resolved: at start and every `interval`, every address a name
/// gives being a server. Through `nameservers` (DNS over UDP) when set, else the system's
/// resolver (getaddrinfo: /etc/hosts, /etc/resolv.conf).
struct Resolver {
    struct Nameserver {
        std::string address;  // an IPv4 or IPv6 address
        std::uint16_t port = 53;
        bool operator==(const Nameserver&) const = default;
    };
    std::vector<Nameserver> nameservers;
    Duration interval{30'000};
    Duration timeout{2'000};  // for each query to a nameserver
    bool operator==(const Resolver&) const = default;
};

struct Config {
    Listeners listen;
    Admin admin;
    PurgeMethod purge_method;
    unsigned workers = 0;  // 0 = one per core
    ClientLimits client;
    Duration drain_timeout{30'000};  // on SIGTERM/SIGINT, how long in-flight requests may finish
    std::vector<Upstream> upstreams;
    Resolver resolver;
    std::vector<Route> routes;
    Cache cache;
    Logging logging;

    /// `workers` with 0 resolved to the number of cores.
    unsigned worker_count() const;
    bool operator==(const Config&) const = default;
};

/// One problem found in a configuration, with where it is.
struct ConfigError {
    int line = 0;          // 1-based; 0 when the problem has no position
    std::string key;       // dotted path, e.g. "upstreams[0].port"
    std::string message;
};

struct ParseResult {
    std::optional<Config> config;     // set when errors is empty
    std::vector<ConfigError> errors;  // every problem, in document order
    bool ok() const { return config.has_value(); }
};

/// Parses and validates YAML text. No file I/O.
ParseResult parse_config(const std::string& yaml_text);

/// Reads and parses a file, and admin.token_file; a read failure is reported as an error at line
/// 0 (the config) or at the key's line (the token file).
ParseResult load_config(const std::string& path);

/// What a reload from `running` to `next` would change. `changed` names what applies live
/// ("routes: added api", "client", "logging.level"); `needs_restart` what cannot change
/// without a restart ("listen.proxy", "workers", "cache.l1", "cache.l2", "logging.format"). Both
/// empty: nothing changed. Where things are defined (lines) does not count.
struct Changes {
    std::vector<std::string> changed;
    std::vector<std::string> needs_restart;
};
Changes compare(const Config& running, const Config& next);

/// Whether two upstreams are the same but for where they are defined.
bool same_upstream(const Upstream& a, const Upstream& b);

/// "FILE:LINE: KEY: message", one per line.
std::string format_errors(const std::string& file, const std::vector<ConfigError>& errors);

}  // namespace cachalot::config
