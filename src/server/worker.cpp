#include "server/worker.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

namespace cachalot::server {

namespace {

std::unique_ptr<store::RedisStore> open_l2(const config::L2Cache& c, const net::any_io_executor& ex,
                                           const metrics::Metrics& metrics, std::shared_ptr<store::RedisNodes> nodes) {
    if (!c.enabled()) return nullptr;
    store::RedisOptions o;
    static_cast<config::L2Cache&>(o) = c;
    o.observe_latency = [&h = metrics.l2_latency()](double s) { h.Observe(s); };
    o.nodes = std::move(nodes);
    return std::make_unique<store::RedisStore>(ex, std::move(o));
}

}  // namespace

Worker::Active::Active(std::shared_ptr<Generation> g, Worker& w, const Active* previous)
    : generation(std::move(g)),
      cfg(*generation->cfg),
      pool(w.ioc_->get_executor(), cfg.upstreams, generation->metrics, generation->balancer,
           previous ? &previous->pool : nullptr),
      pipeline(cfg, pool, w.cache(),
               cache::FetchLock(w.coalescer_, w.l2_.get(),
                                {cfg.cache.coalesce_timeout, cfg.cache.l2.lock, cfg.cache.l2.lock_ttl,
                                 cfg.cache.l2.lock_poll}),
               generation->metrics, w.budget_) {}

std::shared_ptr<Worker::Active> Worker::make_active(std::shared_ptr<Generation> generation, const Active* previous) {
    auto active = std::make_shared<Active>(std::move(generation), *this, previous);
    active->pipeline.keep_alive_with(active);
    return active;
}

Worker::Worker(std::shared_ptr<Generation> generation, const std::atomic<bool>& draining, store::Tier* l1,
               store::PurgeTable& purges, cache::Coalescer& coalescer, core::ByteBudget& budget,
               std::shared_ptr<store::RedisNodes> l2_nodes)
    : metrics_(generation->metrics),
      coalescer_(coalescer),
      draining_(draining),
      budget_(budget),
      l1_(l1),
      purges_(purges),
      // One thread runs this io_context and only it touches the context's sockets (adopt()
      // hands over descriptors, not sockets): no mutex per socket operation, which was a lock
      // and an unlock 3 times per pass-through request. Posting from other threads stays safe.
      ioc_(std::in_place, BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      work_(ioc_->get_executor()),
      l2_(open_l2(generation->cfg->cache.l2, ioc_->get_executor(), metrics_, std::move(l2_nodes))),
      active_(make_active(std::move(generation), nullptr)) {
    // The io_context's reactor (its epoll, eventfd and timerfd descriptors) is made with its
    // first socket: here, at start, not with a first client that may come while the process
    // is out of descriptors.
    tcp::socket reactor_now(*ioc_);
}

void Worker::use(std::shared_ptr<Generation> generation) {
    net::post(*ioc_, [this, generation = std::move(generation)]() mutable {
        try {
            active_ = make_active(std::move(generation), active_.get());
        } catch (const std::exception& e) {  // (its files were checked before: they changed since)
            spdlog::error("worker keeps the previous configuration: {}", e.what());
        }
    });
}

Worker::~Worker() {
    join();
    active_->pool.close_idle();
    active_.reset();
    l2_.reset();
    work_.reset();
    ioc_.reset();
}

void Worker::start() {
    thread_ = std::thread([this] {
        try {
            ioc_->run();
        } catch (const std::exception& e) {
            spdlog::critical("worker stopped by an exception: {}", e.what());
        }
    });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::adopt(int fd, tcp protocol) {
    // Closes the descriptor unless the worker took it (it stopped first: the handler is dropped).
    struct Descriptor {
        int fd;
        explicit Descriptor(int f) : fd(f) {}
        Descriptor(Descriptor&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
        ~Descriptor() {
            if (fd >= 0) ::close(fd);
        }
    };
    ++session_count_;
    net::post(*ioc_, [this, d = Descriptor(fd), protocol]() mutable {
        tcp::socket socket(*ioc_);
        beast::error_code ec;
        socket.assign(protocol, d.fd, ec);
        if (ec) {
            --session_count_;
            spdlog::error("an accepted connection could not be used: {}", ec.message());
            return;
        }
        d.fd = -1;  // the socket's now
        net::co_spawn(*ioc_, run_session(std::move(socket)), [this](std::exception_ptr e) {
            --session_count_;
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    spdlog::error("session ended by an exception: {}", ex.what());
                }
            }
        });
    });
}

void Worker::purge(std::vector<std::string> scopes, cache::PurgeMode mode, store::WallMillis at) {
    net::post(*ioc_, [this, scopes = std::move(scopes), mode, at] {
        auto tiers = cache();
        for (const auto& scope : scopes) tiers.purge(scope, mode, at);
    });
}

void Worker::begin_drain() {
    net::post(*ioc_, [this] {
        for (auto& s : sessions_)
            if (s.idle && !s.fresh) {
                beast::error_code ignored;
                s.socket->cancel(ignored);
            }
    });
}

void Worker::stop() {
    net::post(*ioc_, [this] {
        active_->pool.close_idle();
        work_.reset();
        ioc_->stop();
    });
}

}  // namespace cachalot::server
