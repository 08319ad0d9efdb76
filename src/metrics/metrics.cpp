#include "cachalot/metrics/metrics.hpp"

#include <map>

#include <prometheus/text_serializer.h>

namespace cachalot::metrics {
namespace {

// Request latencies from 100 µs (an L1 hit) to 60 s (a slow origin).
const prometheus::Histogram::BucketBoundaries kLatencyBuckets{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

}  // namespace

void RouteSeries::record(const cache::Outcome& o) const {
    cache_results[static_cast<std::size_t>(o.result)]->Increment();
    const auto detail = static_cast<std::size_t>(o.detail);
    if (o.stored) stored->Increment();
    else if (cache::is_not_stored_reason(o.detail)) not_stored[detail]->Increment();
    if (cache::is_stale_reason(o.detail)) stale_served[detail]->Increment();
    else if (o.collapsed) coalesced->Increment();
    if (o.purged != cache::Purged::None) purged[static_cast<std::size_t>(o.purged)]->Increment();
}

ServerSeries Metrics::server_series(const std::string& upstream, const std::string& server) const {
    const prometheus::Labels l{{"upstream", upstream}, {"server", server}};
    ServerSeries ss{&s_->server_healthy->Add(l),
                    &s_->server_requests->Add(l),
                    &s_->server_failures->Add(l),
                    &s_->server_ejections->Add(l),
                    &s_->server_checks->Add({{"upstream", upstream}, {"server", server}, {"result", "pass"}}),
                    &s_->server_checks->Add({{"upstream", upstream}, {"server", server}, {"result", "fail"}})};
    return ss;
}

void Metrics::drop_server_series(const ServerSeries& series) const {
    s_->server_healthy->Remove(series.healthy);
    s_->server_requests->Remove(series.requests);
    s_->server_failures->Remove(series.failures);
    s_->server_ejections->Remove(series.ejections);
    s_->server_checks->Remove(series.checks_passed);
    s_->server_checks->Remove(series.checks_failed);
}

void RouteSeries::record(unsigned status, double seconds) const {
    unsigned cls = status / 100;
    requests_by_class[cls >= 1 && cls <= 5 ? cls : 0]->Increment();
    duration->Observe(seconds);
}

Metrics::Metrics(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams)
    : s_(std::make_shared<Shared>()) {
    auto& r = *s_->registry;
    s_->requests = &prometheus::BuildCounter()
                        .Name("cachalot_requests_total")
                        .Help("Client requests answered, by route and status class")
                        .Register(r);
    s_->duration = &prometheus::BuildHistogram()
                        .Name("cachalot_request_duration_seconds")
                        .Help("Time from a request's complete head to the end of its response, by route")
                        .Register(r);
    s_->cache_requests = &prometheus::BuildCounter()
                              .Name("cachalot_cache_requests_total")
                              .Help("Requests on caching routes, by how the cache answered them")
                              .Register(r);
    s_->cache_store = &prometheus::BuildCounter()
                           .Name("cachalot_cache_store_total")
                           .Help("Responses fetched for the cache, by what became of them (stored, or why not)")
                           .Register(r);
    s_->stale = &prometheus::BuildCounter()
                     .Name("cachalot_stale_served_total")
                     .Help("Stale responses served, by what allowed it")
                     .Register(r);
    s_->fetches = &prometheus::BuildCounter()
                       .Name("cachalot_origin_fetches_total")
                       .Help("Requests the cache sent to the origin (misses, revalidations, background revalidations)")
                       .Register(r);
    s_->coalesced = &prometheus::BuildCounter()
                         .Name("cachalot_coalesced_requests_total")
                         .Help("Requests that waited for another request's origin fetch and were served from it")
                         .Register(r);
    s_->background = &prometheus::BuildCounter()
                          .Name("cachalot_background_revalidations_total")
                          .Help("Background revalidations started for stale-while-revalidate")
                          .Register(r);
    s_->purged = &prometheus::BuildCounter()
                      .Name("cachalot_purged_lookups_total")
                      .Help("Stored responses found purged: gone (a hard purge; not served) or stale (a soft "
                            "purge; revalidated, or served within its stale windows)")
                      .Register(r);
    s_->up_duration = &prometheus::BuildHistogram()
                           .Name("cachalot_upstream_request_duration_seconds")
                           .Help("Time from sending a request to an origin to the end of its response")
                           .Register(r);
    s_->connections = &prometheus::BuildCounter()
                           .Name("cachalot_upstream_connections_total")
                           .Help("Connections used for origin requests: reused from the pool or newly opened")
                           .Register(r);
    s_->errors = &prometheus::BuildCounter()
                      .Name("cachalot_upstream_errors_total")
                      .Help("Failed origin exchanges, by reason")
                      .Register(r);
    s_->server_healthy = &prometheus::BuildGauge()
                              .Name("cachalot_upstream_server_healthy")
                              .Help("1 while an upstream server takes requests, 0 while it is ejected")
                              .Register(r);
    s_->server_requests = &prometheus::BuildCounter()
                               .Name("cachalot_upstream_server_requests_total")
                               .Help("Requests sent to an upstream server")
                               .Register(r);
    s_->server_failures = &prometheus::BuildCounter()
                               .Name("cachalot_upstream_server_failures_total")
                               .Help("Requests an upstream server failed: unreachable, timed out, broken or 5xx")
                               .Register(r);
    s_->server_ejections = &prometheus::BuildCounter()
                                .Name("cachalot_upstream_server_ejections_total")
                                .Help("Times an upstream server was ejected after failing in a row")
                                .Register(r);
    s_->server_checks = &prometheus::BuildCounter()
                             .Name("cachalot_upstream_health_checks_total")
                             .Help("Active health checks of upstream servers, by result")
                             .Register(r);
    s_->handshakes = &prometheus::BuildCounter()
                          .Name("cachalot_upstream_tls_handshakes_total")
                          .Help("TLS handshakes with upstream servers, by whether they resumed an earlier session")
                          .Register(r);

    s_->active_connections = &prometheus::BuildGauge()
                                  .Name("cachalot_active_connections")
                                  .Help("Client connections currently open")
                                  .Register(r)
                                  .Add({});
    s_->l2_latency = &prometheus::BuildHistogram()
                          .Name("cachalot_l2_command_duration_seconds")
                          .Help("Round-trip time of answered Redis L2 commands")
                          .Register(r)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                                           0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25});
    auto& over_budget = prometheus::BuildCounter()
                            .Name("cachalot_buffer_refusals_total")
                            .Help("Requests answered 503 because client.max_buffered_bytes was reached, by the body "
                                  "that did not fit")
                            .Register(r);
    s_->buffer_refusals[0] = &over_budget.Add({{"body", "request"}});
    s_->buffer_refusals[1] = &over_budget.Add({{"body", "response"}});
    auto& interrupted = prometheus::BuildCounter()
                            .Name("cachalot_streams_interrupted_total")
                            .Help("Response bodies cut short while streaming, by who cut them: the origin (closed, "
                                  "reset or stalled mid-body) or the client (went away)")
                            .Register(r);
    s_->streams_interrupted[0] = &interrupted.Add({{"by", "origin"}});
    s_->streams_interrupted[1] = &interrupted.Add({{"by", "client"}});
    s_->connections_refused = &prometheus::BuildCounter()
                                   .Name("cachalot_connections_refused_total")
                                   .Help("Client connections closed at accept: client.max_connections were open")
                                   .Register(r)
                                   .Add({});
    auto& purges = prometheus::BuildCounter()
                       .Name("cachalot_purges_total")
                       .Help("Purges applied on this node (from the admin API, PURGE, Cache-Group-Invalidation or "
                             "another node), by kind and mode")
                       .Register(r);
    for (std::size_t k = 0; k < cache::kPurgeKindNames.size(); ++k)
        for (std::size_t m = 0; m < cache::kPurgeModeNames.size(); ++m)
            s_->purges[k][m] = &purges.Add(
                {{"kind", std::string(cache::kPurgeKindNames[k])}, {"mode", std::string(cache::kPurgeModeNames[m])}});
    auto& refusals = prometheus::BuildCounter()
                         .Name("cachalot_purge_refusals_total")
                         .Help("Purges refused: no valid admin token, an invalid request, or PURGE from a network "
                               "outside purge_method.allow")
                         .Register(r);
    s_->purge_refusals[0] = &refusals.Add({{"reason", "unauthorized"}});
    s_->purge_refusals[1] = &refusals.Add({{"reason", "invalid"}});
    s_->purge_refusals[2] = &refusals.Add({{"reason", "forbidden"}});
    s_->tags_cut = &prometheus::BuildCounter()
                        .Name("cachalot_tags_cut_total")
                        .Help("Tags a response named past cache.tags.max_count or max_bytes, or malformed: not stored")
                        .Register(r)
                        .Add({});
    s_->rejected = &prometheus::BuildCounter()
                        .Name("cachalot_rejected_requests_total")
                        .Help("Requests refused before routing (malformed, too large, timed out), by status")
                        .Register(r);
    auto& reloads = prometheus::BuildCounter()
                        .Name("cachalot_config_reloads_total")
                        .Help("Configuration reloads (SIGHUP, POST /reload), by result: success (applied, or "
                              "nothing to change) or failure (invalid, or a change that needs a restart)")
                        .Register(r);
    s_->reloads[0] = &reloads.Add({{"result", "failure"}});
    s_->reloads[1] = &reloads.Add({{"result", "success"}});
    s_->last_reload_success_time = &prometheus::BuildGauge()
                                        .Name("cachalot_config_last_reload_success_timestamp_seconds")
                                        .Help("When the configuration in force was loaded (Unix time): the start, "
                                              "or the last successful reload")
                                        .Register(r)
                                        .Add({});
    s_->last_reload_successful = &prometheus::BuildGauge()
                                      .Name("cachalot_config_last_reload_successful")
                                      .Help("1 when the last reload (or the start) succeeded, 0 when it failed")
                                      .Register(r)
                                      .Add({});
    s_->last_reload_successful->Set(1);
    add_series(routes, upstreams);
}

Metrics Metrics::with_config(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams) const {
    Metrics m;
    m.s_ = s_;
    m.add_series(routes, upstreams);
    return m;
}

void Metrics::add_series(const std::vector<std::string>& routes, const std::vector<UpstreamLabels>& upstreams) {
    auto route_names = routes;
    route_names.push_back("none");
    static constexpr std::array classes{"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (const auto& name : route_names) {
        RouteSeries s;
        for (std::size_t c = 0; c < classes.size(); ++c)
            s.requests_by_class[c] = &s_->requests->Add({{"route", name}, {"status_class", classes[c]}});
        s.duration = &s_->duration->Add({{"route", name}}, kLatencyBuckets);
        for (std::size_t i = 0; i < cache::kResultNames.size(); ++i)
            s.cache_results[i] = &s_->cache_requests->Add({{"route", name}, {"result", std::string(cache::kResultNames[i])}});
        s.stored = &s_->cache_store->Add({{"route", name}, {"outcome", std::string(cache::kStoredName)}});
        for (std::size_t i = 0; i < cache::kDetailNames.size(); ++i) {
            const auto detail = static_cast<cache::Detail>(i);
            const std::string label(cache::kDetailNames[i]);
            if (cache::is_not_stored_reason(detail))
                s.not_stored[i] = &s_->cache_store->Add({{"route", name}, {"outcome", label}});
            if (cache::is_stale_reason(detail)) s.stale_served[i] = &s_->stale->Add({{"route", name}, {"reason", label}});
        }
        s.origin_fetches = &s_->fetches->Add({{"route", name}});
        s.coalesced = &s_->coalesced->Add({{"route", name}});
        s.background_revalidations = &s_->background->Add({{"route", name}});
        for (std::size_t i = 1; i < cache::kPurgedNames.size(); ++i)
            s.purged[i] = &s_->purged->Add({{"route", name}, {"verdict", std::string(cache::kPurgedNames[i])}});
        routes_.push_back(s);
    }
    for (const auto& labels : upstreams) {
        const auto& name = labels.name;
        UpstreamSeries s;
        for (const auto& server : labels.servers) s.servers.push_back(server_series(name, server));
        s.duration = &s_->up_duration->Add({{"upstream", name}}, kLatencyBuckets);
        s.connections_new = &s_->connections->Add({{"upstream", name}, {"kind", "new"}});
        s.connections_reused = &s_->connections->Add({{"upstream", name}, {"kind", "reused"}});
        s.tls_full = &s_->handshakes->Add({{"upstream", name}, {"session", "new"}});
        s.tls_resumed = &s_->handshakes->Add({{"upstream", name}, {"session", "resumed"}});
        for (std::size_t e = 0; e < kUpstreamErrorNames.size(); ++e)
            s.errors[e] = &s_->errors->Add({{"upstream", name}, {"reason", kUpstreamErrorNames[e]}});
        upstreams_.push_back(s);
    }
}

void Metrics::config_loaded(double unix_seconds) const {
    s_->last_reload_successful->Set(1);
    s_->last_reload_success_time->Set(unix_seconds);
}

void Metrics::record_reload(bool success, double unix_seconds) const {
    s_->reloads[success ? 1 : 0]->Increment();
    s_->last_reload_successful->Set(success ? 1 : 0);
    if (success) s_->last_reload_success_time->Set(unix_seconds);
}

prometheus::Counter& Metrics::rejected_requests(unsigned status) const {
    // Few distinct statuses (400, 408, 413, 431); Add returns the existing series when it exists.
    return s_->rejected->Add({{"status", std::to_string(status)}});
}

std::string Metrics::serialize() const {
    auto families = s_->registry->Collect();
    std::map<std::string, std::size_t> sourced;  // family name → its index in families
    for (const auto& source : s_->sources) {
        for (auto& sample : source()) {
            auto [at, added] = sourced.try_emplace(sample.name, families.size());
            if (added) {
                prometheus::MetricFamily family;
                family.name = std::move(sample.name);
                family.help = std::move(sample.help);
                family.type = sample.counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
                families.push_back(std::move(family));
            }
            prometheus::ClientMetric metric;
            if (sample.counter) metric.counter.value = sample.value;
            else metric.gauge.value = sample.value;
            for (auto& [name, value] : sample.labels) metric.label.push_back({std::move(name), std::move(value)});
            families[at->second].metric.push_back(std::move(metric));
        }
    }
    prometheus::TextSerializer serializer;
    return serializer.Serialize(families);
}

}  // namespace cachalot::metrics
