#include "server/worker.hpp"

#include <spdlog/spdlog.h>

namespace cachalot::server {

namespace {

std::unique_ptr<store::RedisStore> open_l2(const config::L2Cache& c, const net::any_io_executor& ex,
                                           const metrics::Metrics& metrics) {
    if (c.address.empty()) return nullptr;
    store::RedisOptions o;
    static_cast<config::L2Cache&>(o) = c;
    o.observe_latency = [&h = metrics.l2_latency()](double s) { h.Observe(s); };
    return std::make_unique<store::RedisStore>(ex, std::move(o));
}

}  // namespace

Worker::Worker(const config::Config& cfg, const metrics::Metrics& metrics, const std::atomic<bool>& draining,
               store::Tier* l1, store::PurgeTable& purges, cache::Coalescer& coalescer, core::ByteBudget& budget,
               upstream::Balancer& balancer)
    : cfg_(cfg),
      metrics_(metrics),
      draining_(draining),
      budget_(budget),
      l1_(l1),
      purges_(purges),
      ioc_(std::in_place, 1),
      work_(ioc_->get_executor()),
      pool_(ioc_->get_executor(), cfg.upstreams, metrics, balancer),
      l2_(open_l2(cfg.cache.l2, ioc_->get_executor(), metrics)),
      pipeline_(cfg, pool_, cache(),
                cache::FetchLock(coalescer, l2_.get(),
                                 {cfg.cache.coalesce_timeout, cfg.cache.l2.lock, cfg.cache.l2.lock_ttl,
                                  cfg.cache.l2.lock_poll}),
                metrics, budget) {}

Worker::~Worker() {
    join();
    pool_.close_idle();
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

void Worker::adopt(tcp::socket socket) {
    ++session_count_;
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
            if (s.idle) {
                beast::error_code ignored;
                s.socket->cancel(ignored);
            }
    });
}

void Worker::stop() {
    net::post(*ioc_, [this] {
        pool_.close_idle();
        work_.reset();
        ioc_->stop();
    });
}

}  // namespace cachalot::server
