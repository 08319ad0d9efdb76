#pragma once
// The admin listener's endpoints: /metrics (Prometheus text), /healthz, /readyz, /upstreams
// (each upstream server's state, JSON), and POST /purge (server/purge_api.hpp), which needs
// admin.token when one is configured.

#include "cachalot/config/config.hpp"
#include "cachalot/core/clock.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/store/purge_table.hpp"
#include "cachalot/upstream/balancer.hpp"
#include "core/net.hpp"
#include "server/purge_api.hpp"

#include <functional>

#include <atomic>

namespace cachalot::server {

struct AdminState {
    const config::Config& cfg;
    const metrics::Metrics& metrics;
    const std::atomic<bool>& ready;  // listeners up and config loaded, not draining
    std::chrono::milliseconds timeout;  // per request, read and write
    store::PurgeTable& purges;               // applied here at once (every process on the host)
    std::function<void(const PurgeOrder&, store::WallMillis)> broadcast;  // then to every node
    core::WallClock clock = core::wall_now;
    const upstream::Balancer* balancer = nullptr;  // GET /upstreams (none: an empty list)
};

net::awaitable<void> run_admin_session(tcp::socket socket, const AdminState& state);

}  // namespace cachalot::server
