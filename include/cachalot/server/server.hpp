#pragma once
// The daemon: worker threads serving the proxy listener, the admin listener, the configuration
// reload (SIGHUP, POST /reload) and the SIGTERM/SIGINT drain.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/store/shm_store.hpp"

#include <memory>
#include <string>

namespace cachalot::server {

class Server {
public:
    /// Binds the listeners; throws std::runtime_error with a message naming the address when it
    /// cannot. `cfg` was loaded from `config_path`, which a reload reads again. `l1` (may be
    /// null: no L1) must outlive the server. Adds the L2's metrics to `metrics` when cache.l2 is
    /// configured.
    Server(config::Config cfg, std::string config_path, metrics::Metrics& metrics, store::ShmStore* l1);
    ~Server();

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish
    /// (up to drain_timeout) and returns the process exit code. SIGHUP reloads the configuration.
    int run();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cachalot::server
