#include "cachalot/server/server.hpp"

#include "cachalot/log/log.hpp"
#include "server/admin.hpp"
#include "server/generation.hpp"
#include "server/handoff.hpp"
#include "server/worker.hpp"
#include "upstream/tls.hpp"

#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>

namespace cachalot::server {
namespace {

tcp::acceptor bind_acceptor(net::io_context& ioc, const config::Endpoint& ep, const char* what) {
    beast::error_code ec;
    auto address = net::ip::make_address(ep.address, ec);
    if (ec) throw std::runtime_error(std::string(what) + " listener: invalid address '" + ep.address + "'");
    tcp::endpoint endpoint{address, ep.port};
    tcp::acceptor acceptor(ioc);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error(std::string("cannot listen on ") + ep.address + ":" + std::to_string(ep.port) + " (" +
                                 what + "): " + ec.message());
    return acceptor;
}

// A listening socket handed over by the process this one takes over from (server/handoff.hpp):
// it must listen where this configuration says.
tcp::acceptor adopt_acceptor(net::io_context& ioc, int fd, const config::Endpoint& ep, const char* what) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    beast::error_code ec;
    tcp::acceptor acceptor(ioc);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
        ::close(fd);
        throw std::runtime_error(std::string("--upgrade: the ") + what + " socket handed over is unusable");
    }
    acceptor.assign(bound.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
        ::close(fd);
        throw std::runtime_error(std::string("--upgrade: the ") + what + " socket handed over: " + ec.message());
    }
    const auto local = acceptor.local_endpoint(ec);
    const auto address = net::ip::make_address(ep.address, ec);
    if (ec || local != tcp::endpoint(address, ep.port))
        throw std::runtime_error(std::string("--upgrade: the running process' ") + what + " listener is on " +
                                 local.address().to_string() + ":" + std::to_string(local.port()) +
                                 ", this configuration's on " + ep.address + ":" + std::to_string(ep.port) +
                                 " (a takeover keeps the listen addresses; restart to change them)");
    return acceptor;
}

tcp::acceptor listener(net::io_context& ioc, Takeover* takeover, const config::Endpoint& ep, bool proxy) {
    const char* what = proxy ? "proxy" : "admin";
    if (!takeover) return bind_acceptor(ioc, ep, what);
    return adopt_acceptor(ioc, proxy ? takeover->release_proxy() : takeover->release_admin(), ep, what);
}

}  // namespace

struct Server::Impl {
    const std::string config_path;
    std::string binary;  // this program's path at start (SIGUSR2 starts what is there then)
    const metrics::Metrics& metrics;
    std::atomic<bool> draining{false};
    std::atomic<bool> ready{false};
    cache::Coalescer coalescer;  // one per node: shared by the workers, outlives them
    store::MemoryPurgeTable memory_purges;  // the purge table when there is no L1 file to hold it
    store::PurgeTable purges;
    core::ByteBudget budget;     // client.max_buffered_bytes, for every worker together
    // Declared before ioc so that they outlive it: an abandoned accept holds a worker's socket.
    std::vector<std::unique_ptr<Worker>> workers;
    net::io_context ioc{1};  // accepting, admin, signals, reloads, health checks; requests run on the workers
    Takeover* takeover;  // (at start: the process this one takes over from; else null)
    tcp::acceptor proxy_acceptor;
    tcp::acceptor admin_acceptor;
    std::optional<UpgradeListener> upgrades;  // listen.upgrade_socket: successors take over here
    mutable std::mutex current_mutex;     // (replaced on ioc's thread; read there and by worker 0)
    std::shared_ptr<Generation> current;  // the configuration in force
    AdminState admin{[this] { return std::shared_ptr<const Generation>(generation()); },
                     metrics,
                     ready,
                     std::chrono::milliseconds(10'000),
                     purges,
                     [this](const PurgeOrder& order, store::WallMillis at) {
                         workers.front()->purge(order.scopes, order.mode, at);
                     },
                     [this] { return reload(); },
                     core::wall_now};
    int exit_code = 0;
    std::shared_ptr<store::RedisNodes> l2_nodes = std::make_shared<store::RedisNodes>();

    Impl(config::Config c, std::string path, metrics::Metrics& m, store::ShmStore* l1, Takeover* from)
        : config_path(std::move(path)),
          metrics(m),
          purges(l1 ? l1->purges() : memory_purges.table()),
          budget(c.client.max_buffered_bytes),
          takeover(from),
          proxy_acceptor(listener(ioc, from, c.listen.proxy, true)),
          admin_acceptor(listener(ioc, from, c.listen.admin, false)),
          current(std::make_shared<Generation>(std::make_shared<const config::Config>(std::move(c)), m,
                                               ioc.get_executor(), nullptr)) {
        const auto& cfg = *current->cfg;
        for (unsigned i = 0; i < cfg.worker_count(); ++i)
            workers.push_back(std::make_unique<Worker>(current, draining, l1, purges, coalescer, budget, l2_nodes));
        m.add_source([this] {
            return std::vector<metrics::Sample>{{"cachalot_buffered_bytes",
                                                 "Body bytes held in memory for clients (client.max_buffered_bytes caps it)",
                                                 false, double(budget.used())}};
        });
        if (cfg.cache.l2.enabled()) m.add_source([this] { return l2_samples(); });
        // The L1 and the purge table are shared: one listener is enough.
        workers.front()->listen_for_invalidations([this](std::string_view json) { apply_app_purge(json); });
    }

    std::shared_ptr<Generation> generation() const {
        std::lock_guard lock(current_mutex);
        return current;
    }

    // The configuration file read again (SIGHUP, POST /reload; on ioc's thread). Put in force
    // when it is valid and changes only what can change live; else the running one stays.
    ReloadReport reload() {
        using R = ReloadReport::Result;
        ReloadReport report;
        const auto running = generation();
        auto parsed = config::load_config(config_path);
        if (!parsed.ok()) {
            report.result = R::Invalid;
            for (const auto& e : parsed.errors) report.items.push_back(config::format_errors(config_path, {e}));
            for (auto& item : report.items)
                if (!item.empty() && item.back() == '\n') item.pop_back();
        } else if (auto changes = config::compare(*running->cfg, *parsed.config); !changes.needs_restart.empty()) {
            report.result = R::NeedsRestart;
            report.items = std::move(changes.needs_restart);
        } else if (changes.changed.empty()) {
            report.result = R::Unchanged;
        } else {
            try {
                auto next = std::make_shared<Generation>(std::make_shared<const config::Config>(std::move(*parsed.config)),
                                                         metrics, ioc.get_executor(), running.get());
                // The workers make their pools from it: their TLS files must load now, not there.
                for (const auto& up : next->cfg->upstreams)
                    if (up.tls.enabled) upstream::TlsClient probe(up);
                apply(running, std::move(next));
                report.result = R::Reloaded;
                report.items = std::move(changes.changed);
            } catch (const std::exception& e) {
                report.result = R::Invalid;
                report.items = {config_path + ": " + e.what()};
            }
        }
        const auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        metrics.record_reload(report.ok(), now);
        std::string items;
        for (const auto& item : report.items) items += (items.empty() ? "" : "; ") + item;
        switch (report.result) {
            case R::Reloaded: spdlog::info("configuration reloaded from {}: {}", config_path, items); break;
            case R::Unchanged: spdlog::info("configuration reloaded from {}: nothing changed", config_path); break;
            case R::Invalid:
                spdlog::error("reload refused, the running configuration stays: {}", items);
                break;
            case R::NeedsRestart:
                spdlog::error("reload refused, the running configuration stays: these changes need a restart: {}", items);
                break;
        }
        return report;
    }

    void apply(const std::shared_ptr<Generation>& running, std::shared_ptr<Generation> next) {
        {
            std::lock_guard lock(current_mutex);
            current = next;
        }
        running->retired = true;  // its health checks and name resolution stop
        start(next);
        for (auto& w : workers) w->use(next);
        budget.set_limit(next->cfg->client.max_buffered_bytes);
        log::reconfigure(next->cfg->logging);
    }

    // A purge an application published on the L2's purge channel (every node gets it): applied
    // here; the purge-table resync records it in Redis for nodes that missed the message.
    void apply_app_purge(std::string_view json) {
        auto parsed = parse_purge(json, *generation()->cfg);
        if (auto* refusal = std::get_if<std::string>(&parsed)) {
            spdlog::warn("purge message from the L2 channel refused: {}", *refusal);
            return;
        }
        const auto& order = std::get<PurgeOrder>(parsed);
        apply_purge(order, purges, core::wall_now(), metrics);
        spdlog::info("purge from the L2 channel: {} {} {}", cache::to_string(order.kind), cache::to_string(order.mode),
                     order.what);
    }

    // The L2 counters of every worker, summed.
    std::vector<metrics::Sample> l2_samples() const {
        struct Def {
            const char* name;
            const char* help;
            bool counter;
            std::function<double(const store::RedisCounters&)> read;
        };
        static const std::vector<Def> defs{
            {"cachalot_l2_hits_total", "L2 lookups that found an intact, live entry", true,
             [](auto& c) { return double(c.hits); }},
            {"cachalot_l2_misses_total", "L2 lookups that found nothing usable (absent, expired, garbage, failed)",
             true, [](auto& c) { return double(c.misses); }},
            {"cachalot_l2_errors_total", "L2 commands that failed (connection refused or lost, error reply)", true,
             [](auto& c) { return double(c.errors); }},
            {"cachalot_l2_timeouts_total", "L2 commands not answered within command_timeout", true,
             [](auto& c) { return double(c.timeouts); }},
            {"cachalot_l2_corrupt_dropped_total", "L2 values that failed validation, deleted", true,
             [](auto& c) { return double(c.corrupt_dropped); }},
            {"cachalot_l2_puts_total", "Entries written to the L2", true, [](auto& c) { return double(c.puts); }},
            {"cachalot_l2_write_drops_total", "L2 writes dropped (queue full or breaker open)", true,
             [](auto& c) { return double(c.write_drops); }},
            {"cachalot_l2_refused_too_large_total", "Entries over cache.l2.max_object_size, not sent", true,
             [](auto& c) { return double(c.refused_too_large); }},
            {"cachalot_l2_breaker_opened_total", "Times an L2 breaker opened", true,
             [](auto& c) { return double(c.breaker_opened); }},
            {"cachalot_l2_breaker_open", "L2 breakers open (per Redis node and worker): their keys skip L2", false,
             [](auto& c) { return double(c.breakers_open); }},
            {"cachalot_l2_write_queue_depth", "L2 writes waiting to be sent", false,
             [](auto& c) { return double(c.queue_depth); }},
        };
        std::vector<metrics::Sample> out;
        for (const auto& d : defs) {
            double v = 0;
            for (const auto& w : workers)
                if (w->l2()) v += d.read(w->l2()->counters());
            out.push_back({d.name, d.help, d.counter, v});
        }
        // Per Redis node: as many series as the deployment has nodes.
        struct NodeDef {
            const char* name;
            const char* help;
            bool counter;
            std::function<double(const store::RedisNodeCounters&)> read;
            const char* kind = nullptr;  // the "kind" label, for redirects
        };
        static const std::vector<NodeDef> node_defs{
            {"cachalot_l2_node_commands_total", "Commands answered or failed, per Redis node", true,
             [](auto& c) { return double(c.commands); }},
            {"cachalot_l2_node_errors_total", "Commands that failed or timed out, per Redis node", true,
             [](auto& c) { return double(c.errors); }},
            {"cachalot_l2_node_redirects_total", "Redis Cluster redirects answered by this node", true,
             [](auto& c) { return double(c.moved); }, "moved"},
            {"cachalot_l2_node_redirects_total", "Redis Cluster redirects answered by this node", true,
             [](auto& c) { return double(c.ask); }, "ask"},
            {"cachalot_l2_node_topology_refreshes_total", "Cluster slot maps read from this node", true,
             [](auto& c) { return double(c.refreshes); }},
            {"cachalot_l2_node_failovers_total", "Times this node was seen to take over as a primary", true,
             [](auto& c) { return double(c.failovers); }},
            {"cachalot_l2_node_breaker_open", "Workers whose breaker for this node is open", false,
             [](auto& c) { return double(c.breakers_open); }},
        };
        const auto nodes = l2_nodes->list();
        for (const auto& d : node_defs)
            for (const auto& [node, c] : nodes) {
                metrics::Sample s{d.name, d.help, d.counter, d.read(*c), {{"node", node}}};
                if (d.kind) s.labels.insert(s.labels.begin(), {"kind", d.kind});  // labels in name order
                out.push_back(std::move(s));
            }
        return out;
    }

    // After a failed accept (out of descriptors and the like): log, pause a little, go on
    // serving. Retrying at once would spin on the same error at full CPU.
    net::awaitable<void> back_off_after(const beast::error_code& ec, const char* listener) {
        spdlog::error("{} listener: accept failed: {}", listener, ec.message());
        net::steady_timer pause(ioc, std::chrono::milliseconds(50));
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
    }

    std::size_t open_connections() const {
        std::size_t open = 0;
        for (const auto& w : workers) open += w->session_count();
        return open;
    }

    // Hands each accepted connection to the next worker in turn, as a descriptor: the worker's
    // own thread makes it a socket (Worker::adopt). Every connection waiting is taken per wake.
    net::awaitable<void> accept_proxy() {
        std::size_t next = 0;
        beast::error_code ec;
        proxy_acceptor.non_blocking(true, ec);
        const auto protocol = proxy_acceptor.local_endpoint(ec).protocol();
        for (;;) {
            auto [wec] = co_await proxy_acceptor.async_wait(tcp::acceptor::wait_read, net::as_tuple(net::use_awaitable));
            if (wec == net::error::operation_aborted || !proxy_acceptor.is_open()) co_return;
            if (wec) {
                co_await back_off_after(wec, "proxy");
                continue;
            }
            for (;;) {
                const int fd = ::accept4(proxy_acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    const int error = errno;
                    if (error == EAGAIN || error == EWOULDBLOCK) break;
                    if (error == EINTR || error == ECONNABORTED) continue;
                    co_await back_off_after(beast::error_code(error, beast::system_category()), "proxy");
                    break;
                }
                // (A connection accepted just before the acceptor closed is still served: dropped,
                // its client, which may be sending already, would see a reset.)
                // Over client.max_connections: closed at once, before it costs a session.
                if (open_connections() >= generation()->cfg->client.max_connections) {
                    ::close(fd);
                    metrics.connections_refused().Increment();
                    continue;
                }
                workers[next]->adopt(fd, protocol);
                next = (next + 1) % workers.size();
                if (!proxy_acceptor.is_open()) co_return;
            }
        }
    }

    net::awaitable<void> accept_admin() {
        for (;;) {
            auto [ec, socket] = co_await admin_acceptor.async_accept(net::as_tuple(net::use_awaitable));
            if (ec) {
                if (ec == net::error::operation_aborted || !admin_acceptor.is_open()) co_return;
                co_await back_off_after(ec, "admin");
                continue;
            }
            net::co_spawn(ioc, run_admin_session(std::move(socket), admin), net::detached);
            if (!admin_acceptor.is_open()) co_return;
        }
    }

    // Stop accepting, let in-flight requests finish, then stop everything. `handed_over`: a
    // successor took the listening sockets over (it serves the admin endpoints too from now on).
    net::awaitable<void> drain(bool handed_over = false) {
        if (draining) co_return;  // (already: a SIGTERM after a hand-over)
        const auto timeout = generation()->cfg->drain_timeout;
        spdlog::info("draining: no new connections, waiting up to {} ms for in-flight requests", timeout.count());
        ready = false;
        draining = true;
        beast::error_code ignored;
        proxy_acceptor.close(ignored);
        if (handed_over) admin_acceptor.close(ignored);
        else notify_service_manager("STOPPING=1");  // (after a hand-over the service goes on: the successor's)
        if (upgrades) {
            upgrades->close();
            // (After a hand-over the file is the successor's to replace; else nobody needs it.)
            if (!handed_over) ::unlink(generation()->cfg->listen.upgrade_socket.c_str());
        }
        for (auto& w : workers) w->begin_drain();

        auto deadline = std::chrono::steady_clock::now() + timeout;
        net::steady_timer tick(ioc);
        for (;;) {
            std::size_t open = 0;
            for (auto& w : workers) open += w->session_count();
            if (open == 0) break;
            if (std::chrono::steady_clock::now() >= deadline) {
                spdlog::warn("drain timeout: closing {} connection(s) still open", open);
                break;
            }
            tick.expires_after(std::chrono::milliseconds(20));
            co_await tick.async_wait(net::as_tuple(net::use_awaitable));
        }
        admin_acceptor.close(ignored);
        for (auto& w : workers) w->stop();
        ioc.stop();
    }
};

Server::Server(config::Config cfg, std::string config_path, metrics::Metrics& metrics, store::ShmStore* l1,
               Takeover* takeover)
    : impl_(new Impl(std::move(cfg), std::move(config_path), metrics, l1, takeover)) {}

Server::~Server() = default;

int Server::run() {
    auto& s = *impl_;
    std::error_code unknown;
    s.binary = std::filesystem::read_symlink("/proc/self/exe", unknown).string();
    for (auto& w : s.workers) w->start();
    // SIGHUP reloads the configuration; SIGUSR2 starts a successor that takes over (a binary
    // upgrade: the binary now at this one's path); SIGTERM and SIGINT drain and stop.
    net::signal_set signals(s.ioc, SIGTERM, SIGINT, SIGHUP);
    signals.add(SIGUSR2);
    std::function<void(const beast::error_code&, int)> on_signal = [&](const beast::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
            spdlog::info("received SIGHUP: reloading {}", s.config_path);
            s.reload();
            signals.async_wait(on_signal);
            return;
        }
        if (signal == SIGUSR2) {
            if (s.draining) return;
            if (!s.upgrades) {
                spdlog::error("received SIGUSR2: an upgrade needs listen.upgrade_socket");
            } else {
                try {
                    ::signal(SIGCHLD, SIG_IGN);  // (a successor that fails is reaped by the kernel)
                    const auto pid = spawn_successor(s.binary, s.config_path);
                    spdlog::info("received SIGUSR2: started process {} ({}) to take over", pid, s.binary);
                } catch (const std::exception& e) {
                    spdlog::error("received SIGUSR2: {}", e.what());
                }
            }
            signals.async_wait(on_signal);
            return;
        }
        spdlog::info("received signal {}", signal);
        net::co_spawn(s.ioc, s.drain(), net::detached);
    };
    signals.async_wait(on_signal);
    const auto first = s.generation();
    start(first);
    s.metrics.config_loaded(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    net::co_spawn(s.ioc, s.accept_proxy(), net::detached);
    net::co_spawn(s.ioc, s.accept_admin(), net::detached);
    s.ready = true;
    const auto& cfg = *first->cfg;
    if (s.takeover) {
        // Accepting from here on (ioc.run() below; connections wait in the shared queue until
        // then): the old process may stop.
        try {
            s.takeover->serving();
            spdlog::info("upgrade: took over the listening sockets of process {}, which drains", s.takeover->peer());
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
        }
    }
    if (!cfg.listen.upgrade_socket.empty()) {
        s.upgrades.emplace(
            s.ioc, cfg.listen.upgrade_socket,
            [&s] { return std::array{s.proxy_acceptor.native_handle(), s.admin_acceptor.native_handle()}; },
            [&s] { net::co_spawn(s.ioc, s.drain(true), net::detached); });
    }
    // (Under systemd's Type=notify: this process is the service's main one from now on, the
    // successor of an upgrade included.)
    notify_service_manager("READY=1\nMAINPID=" + std::to_string(::getpid()));
    spdlog::info("cachalot {} listening on {}:{} (admin {}:{}), {} worker(s)", CACHALOT_VERSION, cfg.listen.proxy.address,
                 cfg.listen.proxy.port, cfg.listen.admin.address, cfg.listen.admin.port, s.workers.size());
    s.ioc.run();
    for (auto& w : s.workers) w->join();
    s.ioc.restart();
    s.ioc.poll();  // completes the cancelled accepts, so their coroutines end
    spdlog::info("stopped");
    return s.exit_code;
}

}  // namespace cachalot::server
