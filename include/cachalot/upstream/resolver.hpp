#pragma once
// Upstream host names, resolved again and again (config `resolver`): at start and every
// interval, the addresses of every entry given by name go to the balancer, each a server. A
// name that cannot be resolved, or resolves to no address, keeps its last addresses (logged).
// Through the configured nameservers (DNS over UDP, upstream/dns.hpp), else the system's
// resolver.

#include "cachalot/config/config.hpp"
#include "cachalot/upstream/balancer.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <functional>
#include <memory>

namespace cachalot::upstream {

/// Starts resolving on `executor` until its event loop stops or `*stop`; `added(u, s)` is
/// called there for each server a name resolved to that is new (or back). The loops hold
/// `stop` until they see it; `config` and `balancer` must live as long (`stop` may own them).
void start_resolving(boost::asio::any_io_executor executor, const config::Config& config, Balancer& balancer,
                     std::function<void(std::size_t u, std::size_t s)> added,
                     std::shared_ptr<const std::atomic<bool>> stop);

}  // namespace cachalot::upstream
