#pragma once
// The daemon: worker threads serving the proxy listener, the admin listener, the configuration
// reload (SIGHUP, POST /reload) and the SIGTERM/SIGINT drain.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/store/shm_store.hpp"

#include <memory>
#include <string>

namespace cachalot::server {

class Takeover;  // (server/handoff.hpp)

class Server {
public:
    /// Binds the listeners; throws std::runtime_error with a message naming the address when it
    /// cannot. `cfg` was loaded from `config_path`, which a reload reads again. `l1` (may be
    /// null: no L1) must outlive the server. Adds the L2's metrics to `metrics` when cache.l2 is
    /// configured. With `takeover` (cachalot --upgrade), the listening sockets are the running
    /// process' (they must listen where `cfg` says), and it is told to drain once this one
    /// serves; `takeover` must live until run() returns.
    Server(config::Config cfg, std::string config_path, metrics::Metrics& metrics, store::ShmStore* l1,
           Takeover* takeover = nullptr);
    ~Server();

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish
    /// (up to drain_timeout) and returns the process exit code. SIGHUP reloads the configuration.
    /// With listen.upgrade_socket, a successor may take the listening sockets over: then this
    /// one drains the same way.
    int run();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cachalot::server
