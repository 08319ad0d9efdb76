#pragma once
// A worker: one thread, one io_context, its own origin connection pool, Redis connections and
// client connections. Shared with the other workers: the coalescer (one fetch per key for the
// node), the L1 file, the purge table and the byte budget; each is built for concurrent use.
// Everything else is the worker's own.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/pool.hpp"
#include "core/net.hpp"
#include "server/generation.hpp"
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
    bool fresh = true;  // no request yet: a client that just connected, whose request is on its way
};

class Worker {
public:
    /// Serves with `generation` until use() gives another. `l1` may be null (no L1). With
    /// an L2 configured, the worker opens its own Redis connections (counted per Redis node in
    /// `l2_nodes`). `coalescer`, `purges`, `l2_nodes` and the generation's balancer are shared by
    /// every worker.
    Worker(std::shared_ptr<Generation> generation, const std::atomic<bool>& draining, store::Tier* l1,
           store::PurgeTable& purges, cache::Coalescer& coalescer, core::ByteBudget& budget,
           std::shared_ptr<store::RedisNodes> l2_nodes);
    ~Worker();

    void start();
    void join();

    /// Runs a client connection on this worker (call from any thread): `fd`, an accepted
    /// non-blocking socket of `protocol`, is the worker's to close from now on. (Only the
    /// worker's thread touches its sockets: its io_context runs without a lock per socket
    /// operation, BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO.)
    void adopt(int fd, tcp protocol);

    /// Closes idle keep-alive connections now; busy ones close after their current response.
    /// A connection with no request yet (accepted just before) is served its first request
    /// (with Connection: close): its client has not seen a response it could retry after.
    void begin_drain();

    /// Stops the event loop; pending work is abandoned.
    void stop();

    /// New requests are served with `generation` from now on (a reload; call from any thread).
    /// The worker's pool and pipeline for it are made on the worker's thread; connections to
    /// upstreams that did not change stay. Requests in flight finish with the one they began with.
    void use(std::shared_ptr<Generation> generation);

    std::size_t session_count() const { return session_count_.load(); }

    /// Applies the other nodes' invalidations and purges (from the L2) here, keeps the purge
    /// table in step with Redis', and hands applications' purge messages to `on_app_purge`;
    /// call on one worker only, before start().
    void listen_for_invalidations(cache::TieredCache::AppPurgeHandler on_app_purge) {
        cache().listen_for_invalidations(std::move(on_app_purge), active_->generation->cfg->cache.l2.purge_resync);
    }

    /// Purges `scopes` here and, through this worker's L2, on every node (call from any thread).
    void purge(std::vector<std::string> scopes, cache::PurgeMode mode, store::WallMillis at);

    /// This worker's L2 store, or null.
    const store::RedisStore* l2() const { return l2_.get(); }

private:
    /// What the worker serves one generation with. Requests hold it until they are done.
    struct Active {
        Active(std::shared_ptr<Generation> g, Worker& w, const Active* previous);
        std::shared_ptr<Generation> generation;
        const config::Config& cfg;
        upstream::Pool pool;
        Pipeline pipeline;
    };
    std::shared_ptr<Active> make_active(std::shared_ptr<Generation> generation, const Active* previous);

    net::awaitable<void> run_session(tcp::socket socket);
    cache::TieredCache cache() { return cache::TieredCache(l1_, l2_.get(), &purges_); }

    const metrics::Metrics metrics_;  // the node's (the generation's route series are its own)
    cache::Coalescer& coalescer_;
    const std::atomic<bool>& draining_;
    core::ByteBudget& budget_;  // node-wide: body bytes held for clients
    store::Tier* l1_;
    store::PurgeTable& purges_;
    // Destroyed explicitly in ~Worker, before the sessions' state, which abandoned coroutines touch.
    std::optional<net::io_context> ioc_;
    net::executor_work_guard<net::io_context::executor_type> work_;
    std::unique_ptr<store::RedisStore> l2_;  // released in ~Worker while its io_context still exists
    std::shared_ptr<Active> active_;          // touched only on this worker's thread (once started)
    std::list<SessionHandle> sessions_;  // touched only on this worker's thread
    std::atomic<std::size_t> session_count_{0};
    std::thread thread_;
};

}  // namespace cachalot::server
