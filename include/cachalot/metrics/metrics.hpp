#pragma once
// Cachalot's Prometheus metrics. Every series the data path touches is created at startup and
// held by reference, so recording a request is a few atomic adds, never a map lookup.

#include "cachalot/cache/outcome.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <functional>
#include <memory>
#include <string_view>
#include <string>
#include <vector>

namespace cachalot::metrics {

/// Why an upstream exchange failed; the label values of cachalot_upstream_errors_total.
/// Unavailable: every server of the upstream is ejected. Busy: max_in_flight requests were in
/// flight already (nothing was sent). Tls: the TLS handshake failed (a certificate that does not
/// verify, no protocol in common, a server that does not speak TLS).
enum class UpstreamError { Connect, Timeout, BadResponse, Closed, Unavailable, Busy, Tls };
inline constexpr std::array kUpstreamErrorNames{"connect",     "timeout", "bad_response", "closed",
                                                "unavailable", "busy",    "tls"};

struct RouteSeries {
    std::array<prometheus::Counter*, 6> requests_by_class{};  // index = status / 100; 0 = other
    prometheus::Histogram* duration = nullptr;
    // Indexed by the vocabularies' enums (cache/outcome.hpp): a label outside them cannot be written.
    std::array<prometheus::Counter*, cache::kResultNames.size()> cache_results{};
    std::array<prometheus::Counter*, cache::kDetailNames.size()> not_stored{};    // the not-stored reasons only
    std::array<prometheus::Counter*, cache::kDetailNames.size()> stale_served{};  // the stale reasons only
    prometheus::Counter* stored = nullptr;
    prometheus::Counter* origin_fetches = nullptr;           // requests the cache sent to the origin
    prometheus::Counter* coalesced = nullptr;                // requests served by another request's fetch
    prometheus::Counter* background_revalidations = nullptr; // fetches started by stale-while-revalidate
    std::array<prometheus::Counter*, cache::kPurgedNames.size()> purged{};  // purged stored responses found
    void record(unsigned status, double seconds) const;
    /// Counts how the cache answered: its result, what became of a fetched response, a stale
    /// response served, a request served by another's fetch.
    void record(const cache::Outcome& outcome) const;
};

/// One server of an upstream (label `server`: its configured host:port).
struct ServerSeries {
    prometheus::Gauge* healthy = nullptr;      // 1 while it takes requests, 0 while ejected
    prometheus::Counter* requests = nullptr;   // requests sent to it
    prometheus::Counter* failures = nullptr;   // of those, the ones it failed (counted toward ejection)
    prometheus::Counter* ejections = nullptr;  // times it was ejected
    prometheus::Counter* checks_passed = nullptr;  // active health checks
    prometheus::Counter* checks_failed = nullptr;
};

/// An upstream's name and its servers' labels, for its series.
struct UpstreamLabels {
    UpstreamLabels(std::string n, std::vector<std::string> s = {}) : name(std::move(n)), servers(std::move(s)) {}
    UpstreamLabels(const char* n) : name(n) {}
    std::string name;
    std::vector<std::string> servers;
};

struct UpstreamSeries {
    std::vector<ServerSeries> servers;  // one per labelled server
    prometheus::Histogram* duration = nullptr;
    prometheus::Counter* connections_new = nullptr;
    prometheus::Counter* connections_reused = nullptr;
    prometheus::Counter* tls_full = nullptr;     // TLS handshakes that made a new session
    prometheus::Counter* tls_resumed = nullptr;  // TLS handshakes that resumed one
    std::array<prometheus::Counter*, kUpstreamErrorNames.size()> errors{};
    prometheus::Counter& error(UpstreamError e) const { return *errors[static_cast<std::size_t>(e)]; }
};

/// One value read at scrape time from a component that keeps its own counters (the L1 store
/// keeps them in shared memory, across processes and restarts).
struct Sample {
    std::string name;
    std::string help;
    bool counter = false;  // else a gauge
    double value = 0;
    /// Samples of one name with different labels are the series of one family.
    std::vector<std::pair<std::string, std::string>> labels = {};
};
using SampleSource = std::function<std::vector<Sample>()>;

class Metrics {
public:
    /// Series for each route (plus "none" for requests no route matched) and each upstream.
    Metrics(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams);

    /// The same metrics (every family, counter and source shared) with the series of another
    /// configuration's routes and upstreams: what a reload serves with. Series of the same
    /// names are the same series.
    Metrics with_config(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams) const;

    const RouteSeries& route(std::size_t index) const { return routes_.at(index); }
    /// The series of requests that matched no route.
    const RouteSeries& unrouted() const { return routes_.back(); }
    const UpstreamSeries& upstream(std::size_t index) const { return upstreams_.at(index); }

    /// The series of one server of an upstream (made when a name resolves to a new address),
    /// and their removal (when it no longer does). The same labels give the same series; its
    /// `healthy` gauge is the balancer's to set.
    ServerSeries server_series(const std::string& upstream, const std::string& server) const;
    void drop_server_series(const ServerSeries& series) const;

    prometheus::Gauge& active_connections() const { return *s_->active_connections; }
    prometheus::Counter& rejected_requests(unsigned status) const;
    /// A request refused because its body (request) or its response's body (response) would
    /// have passed client.max_buffered_bytes.
    prometheus::Counter& buffer_refusals(bool response) const { return *s_->buffer_refusals[response ? 1 : 0]; }
    prometheus::Counter& connections_refused() const { return *s_->connections_refused; }
    /// A response body cut short while streaming: by the origin (it closed, reset or stalled
    /// mid-body) or by the client (it went away before the end).
    prometheus::Counter& streams_interrupted(bool by_client) const { return *s_->streams_interrupted[by_client ? 1 : 0]; }
    /// Round-trip time of L2 (Redis) commands that were answered.
    prometheus::Histogram& l2_latency() const { return *s_->l2_latency; }
    prometheus::Counter& purges(cache::PurgeKind kind, cache::PurgeMode mode) const {
        return *s_->purges[static_cast<std::size_t>(kind)][static_cast<std::size_t>(mode)];
    }
    /// A purge that was refused: no valid admin token (unauthorized), a request that does not
    /// parse (invalid), or PURGE from outside purge_method.allow (forbidden).
    enum class PurgeRefusal { Unauthorized, Invalid, Forbidden };
    prometheus::Counter& purge_refusals(PurgeRefusal why) const { return *s_->purge_refusals[static_cast<std::size_t>(why)]; }
    /// Tags a response named beyond cache.tags.max_count / max_bytes, or malformed.
    prometheus::Counter& tags_cut() const { return *s_->tags_cut; }
    /// A configuration reload, applied or refused; a success also sets the time of the last
    /// one (Unix seconds; the start counts as the first) and the last one's verdict.
    void record_reload(bool success, double unix_seconds) const;
    /// The configuration in force was loaded at `unix_seconds` (the start).
    void config_loaded(double unix_seconds) const;

    /// Adds values read at every scrape. Call before the server starts.
    void add_source(SampleSource source) { s_->sources.push_back(std::move(source)); }

    /// The Prometheus text exposition of every metric.
    std::string serialize() const;

private:
    struct Shared {
        std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
        // Families with a series per route or per upstream (labels from the configuration).
        prometheus::Family<prometheus::Counter>* requests = nullptr;
        prometheus::Family<prometheus::Histogram>* duration = nullptr;
        prometheus::Family<prometheus::Counter>* cache_requests = nullptr;
        prometheus::Family<prometheus::Counter>* cache_store = nullptr;
        prometheus::Family<prometheus::Counter>* stale = nullptr;
        prometheus::Family<prometheus::Counter>* fetches = nullptr;
        prometheus::Family<prometheus::Counter>* coalesced = nullptr;
        prometheus::Family<prometheus::Counter>* background = nullptr;
        prometheus::Family<prometheus::Counter>* purged = nullptr;
        prometheus::Family<prometheus::Histogram>* up_duration = nullptr;
        prometheus::Family<prometheus::Counter>* connections = nullptr;
        prometheus::Family<prometheus::Counter>* errors = nullptr;
        prometheus::Family<prometheus::Counter>* handshakes = nullptr;
        prometheus::Family<prometheus::Gauge>* server_healthy = nullptr;
        prometheus::Family<prometheus::Counter>* server_requests = nullptr;
        prometheus::Family<prometheus::Counter>* server_failures = nullptr;
        prometheus::Family<prometheus::Counter>* server_ejections = nullptr;
        prometheus::Family<prometheus::Counter>* server_checks = nullptr;
        // The node's own.
        prometheus::Gauge* active_connections = nullptr;
        prometheus::Family<prometheus::Counter>* rejected = nullptr;
        std::array<prometheus::Counter*, 2> buffer_refusals{};
        prometheus::Counter* connections_refused = nullptr;
        std::array<prometheus::Counter*, 2> streams_interrupted{};
        prometheus::Histogram* l2_latency = nullptr;
        std::array<std::array<prometheus::Counter*, cache::kPurgeModeNames.size()>, cache::kPurgeKindNames.size()> purges{};
        prometheus::Counter* tags_cut = nullptr;
        std::array<prometheus::Counter*, 3> purge_refusals{};
        std::array<prometheus::Counter*, 2> reloads{};  // failure, success
        prometheus::Gauge* last_reload_success_time = nullptr;
        prometheus::Gauge* last_reload_successful = nullptr;
        std::vector<SampleSource> sources;
    };
    Metrics() = default;
    void add_series(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams);

    std::shared_ptr<Shared> s_;
    std::vector<RouteSeries> routes_;
    std::vector<UpstreamSeries> upstreams_;
};

}  // namespace cachalot::metrics
