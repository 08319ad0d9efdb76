#pragma once
// A worker: one thread, one io_context, its own origin connection pool, Redis connections and
// client connections. Shared with the other workers: the coalescer (one fetch per key for the
// node), the L1 file, the purge table and the byte budget; each is built for concurrent use.
// Everything else is the worker's own.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/pool.hpp"
#include "core/net.hpp"
#include "server/pipeline.hpp"

#include <atomic>
#include <list>
#include <optional>
#include <thread>

namespace cachalot::server {

/// A client connection as the worker sees it: enough to close it when draining.
struct SessionHandle {
    tcp::socket* socket = nullptr;
    bool idle = false;  // waiting for the next request (nothing in flight)
};

class Worker {
public:
    /// `l1` may be null (no L1). With cache.l2.address set, the worker opens its own Redis
    /// connections. `coalescer`, `purges` and `balancer` are shared by every worker.
    Worker(const config::Config& cfg, const metrics::Metrics& metrics, const std::atomic<bool>& draining,
           store::Tier* l1, store::PurgeTable& purges, cache::Coalescer& coalescer, core::ByteBudget& budget,
           upstream::Balancer& balancer);
    ~Worker();

    net::io_context& context() { return *ioc_; }
    void start();
    void join();

    /// Runs a client connection on this worker (call from any thread).
    void adopt(tcp::socket socket);

    /// Closes idle keep-alive connections now; busy ones close after their current response.
    void begin_drain();

    /// Stops the event loop; pending work is abandoned.
    void stop();

    std::size_t session_count() const { return session_count_.load(); }

    /// Applies the other nodes' invalidations and purges (from the L2) here, keeps the purge
    /// table in step with Redis', and hands applications' purge messages to `on_app_purge`;
    /// call on one worker only, before start().
    void listen_for_invalidations(cache::TieredCache::AppPurgeHandler on_app_purge) {
        cache().listen_for_invalidations(std::move(on_app_purge), cfg_.cache.l2.purge_resync);
    }

    /// Purges `scopes` here and, through this worker's L2, on every node (call from any thread).
    void purge(std::vector<std::string> scopes, cache::PurgeMode mode, store::WallMillis at);

    /// This worker's L2 store, or null.
    const store::RedisStore* l2() const { return l2_.get(); }

private:
    net::awaitable<void> run_session(tcp::socket socket);
    cache::TieredCache cache() { return cache::TieredCache(l1_, l2_.get(), &purges_); }

    const config::Config& cfg_;
    const metrics::Metrics& metrics_;
    const std::atomic<bool>& draining_;
    core::ByteBudget& budget_;  // node-wide: body bytes held for clients
    store::Tier* l1_;
    store::PurgeTable& purges_;
    // Destroyed explicitly in ~Worker, before the sessions' state, which abandoned coroutines touch.
    std::optional<net::io_context> ioc_;
    net::executor_work_guard<net::io_context::executor_type> work_;
    upstream::Pool pool_;
    std::unique_ptr<store::RedisStore> l2_;  // released in ~Worker while its io_context still exists
    Pipeline pipeline_;
    std::list<SessionHandle> sessions_;  // touched only on this worker's thread
    std::atomic<std::size_t> session_count_{0};
    std::thread thread_;
};

}  // namespace cachalot::server
