#pragma once
// Active health checks (upstreams[].health_check): every server of an upstream gets a GET of the
// configured path every interval, on a connection of its own (TLS for a TLS upstream);
// `unhealthy_after` failures in a row (refused, timed out, an unexpected status) take it out of
// the balancer's choice, `healthy_after` passes in a row bring it back. A server that a name
// resolves to later is checked from then on (watch()).

#include "cachalot/config/config.hpp"
#include "cachalot/upstream/balancer.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>

#include <memory>
#include <vector>

namespace cachalot::upstream {

class TlsClient;

class HealthChecks {
public:
    /// Runs on `executor`; `upstreams` and `balancer` must outlive its event loop. Throws as
    /// TlsClient does for a TLS upstream's unusable files.
    HealthChecks(boost::asio::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
                 Balancer& balancer);
    ~HealthChecks();
    HealthChecks(const HealthChecks&) = delete;
    HealthChecks& operator=(const HealthChecks&) = delete;

    /// Starts checking every server numbered so far, of every upstream with checks, until
    /// `*stop` (the checks hold `stop`, and what it owns, until they see it: with the aliasing
    /// constructor of shared_ptr it can own the configuration and the balancer they use).
    void start(const std::shared_ptr<const std::atomic<bool>>& stop);
    /// Starts checking server `s` of upstream `u` (when it has checks), until that server's
    /// address goes away or its number goes to another address.
    void watch(std::size_t u, std::size_t s);

private:
    boost::asio::any_io_executor executor_;
    const std::vector<config::Upstream>& upstreams_;
    Balancer& balancer_;
    std::vector<std::shared_ptr<TlsClient>> tls_;  // per upstream; null: plain
    std::weak_ptr<const std::atomic<bool>> stop_;  // (weak: it may own this object)
};

}  // namespace cachalot::upstream
