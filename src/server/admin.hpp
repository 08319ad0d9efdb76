#pragma once
// The admin listener's endpoints: /metrics (Prometheus text), /healthz, /readyz, /upstreams
// (each upstream server's state, JSON), POST /purge (server/purge_api.hpp) and POST /reload
// (the configuration file read again), which need admin.token when one is configured.

#include "cachalot/config/config.hpp"
#include "cachalot/core/clock.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/store/purge_table.hpp"
#include "cachalot/upstream/balancer.hpp"
#include "core/net.hpp"
#include "server/generation.hpp"
#include "server/purge_api.hpp"

#include <functional>

#include <atomic>

namespace cachalot::server {

/// What a reload did.
struct ReloadReport {
    enum class Result {
        Reloaded,      // applied: `items` names what changed
        Unchanged,     // the file says what is in force already
        Invalid,       // refused: `items` are the errors (FILE:LINE: KEY: message)
        NeedsRestart,  // refused: `items` names the changes that cannot apply live
    };
    Result result = Result::Unchanged;
    std::vector<std::string> items;
    bool ok() const { return result == Result::Reloaded || result == Result::Unchanged; }
};

/// {"result":"reloaded","changed":[…]}, {"result":"invalid","errors":[…]} and so on.
std::string reload_json(const ReloadReport& report);

struct AdminState {
    std::function<std::shared_ptr<const Generation>()> current;  // the configuration in force
    const metrics::Metrics& metrics;
    const std::atomic<bool>& ready;  // listeners up and config loaded, not draining
    std::chrono::milliseconds timeout;  // per request, read and write
    store::PurgeTable& purges;               // applied here at once (every process on the host)
    std::function<void(const PurgeOrder&, store::WallMillis)> broadcast;  // then to every node
    std::function<ReloadReport()> reload;  // POST /reload
    core::WallClock clock = core::wall_now;
};

net::awaitable<void> run_admin_session(tcp::socket socket, const AdminState& state);

}  // namespace cachalot::server
