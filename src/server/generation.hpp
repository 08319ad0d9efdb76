#pragma once
// A configuration in force, and what the node builds from it: the metric series of its routes
// and upstreams, the balancer, the active health checks and the resolution of upstream names.
//
// A reload (server.cpp) makes the next generation from the last one: upstreams that did not
// change keep their balancer state (and, in each worker, their pooled connections); the rest
// start afresh. Each request runs to its end on the generation it started on (it holds it);
// new requests take the new one. A replaced generation is retired: its health checks and name
// resolution stop, and it is freed when the last request on it is done.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/balancer.hpp"
#include "cachalot/upstream/health_check.hpp"
#include "core/net.hpp"

#include <atomic>
#include <memory>

namespace cachalot::server {

struct Generation {
    /// `metrics`: the node's (its series for this configuration are made here). `previous`:
    /// the generation this one replaces, if any. Throws as HealthChecks does.
    Generation(std::shared_ptr<const config::Config> config, const metrics::Metrics& metrics,
               net::any_io_executor executor, const Generation* previous);
    Generation(const Generation&) = delete;
    Generation& operator=(const Generation&) = delete;

    const std::shared_ptr<const config::Config> cfg;
    const metrics::Metrics metrics;
    upstream::Balancer balancer;
    upstream::HealthChecks health_checks;
    const net::any_io_executor executor;  // where its health checks and name resolution run
    std::atomic<bool> retired{false};     // replaced: its background work stops
};

/// Starts `g`'s health checks and name resolution, until it is retired.
void start(const std::shared_ptr<Generation>& g);

}  // namespace cachalot::server
