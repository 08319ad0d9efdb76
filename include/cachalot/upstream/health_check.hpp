#pragma once
// Active health checks (upstreams[].health_check): every server of an upstream gets a GET of the
// configured path every interval, on a connection of its own; `unhealthy_after` failures in a
// row (refused, timed out, an unexpected status) take it out of the balancer's choice,
// `healthy_after` passes in a row bring it back.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/balancer.hpp"

#include <boost/asio/any_io_executor.hpp>

namespace cachalot::upstream {

/// Starts the checks of upstream `u` (when it has a health_check.path) on `executor`; they run
/// until its event loop stops. `up`, `balancer` and `metrics` must outlive that loop.
void start_health_checks(boost::asio::any_io_executor executor, const config::Upstream& up, std::size_t u,
                         Balancer& balancer, const metrics::Metrics& metrics);

}  // namespace cachalot::upstream
