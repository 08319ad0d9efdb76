#pragma once
// The admin listener's endpoints: /metrics (Prometheus text), /healthz, /readyz.

#include "cachalot/metrics/metrics.hpp"
#include "core/net.hpp"

#include <atomic>

namespace cachalot::server {

struct AdminState {
    const metrics::Metrics& metrics;
    const std::atomic<bool>& ready;  // listeners up and config loaded, not draining
    std::chrono::milliseconds timeout;  // per request, read and write
};

net::awaitable<void> run_admin_session(tcp::socket socket, const AdminState& state);

}  // namespace cachalot::server
