#include "server/worker.hpp"

#include <spdlog/spdlog.h>

namespace cachalot::server {

Worker::Worker(const config::Config& cfg, const metrics::Metrics& metrics, const std::atomic<bool>& draining,
               store::ShmStore* l1)
    : cfg_(cfg),
      metrics_(metrics),
      draining_(draining),
      ioc_(std::in_place, 1),
      work_(ioc_->get_executor()),
      pool_(ioc_->get_executor(), cfg.upstreams, metrics),
      handler_(cfg, pool_, l1, metrics) {}

Worker::~Worker() {
    join();
    pool_.close_idle();
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
