// cachalot: CLI, configuration, logging, metrics and the server, wired together.

#include "cachalot/config/config.hpp"
#include "cachalot/log/log.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/server/server.hpp"
#include "cachalot/store/shm_store.hpp"
#include "cli/purge.hpp"
#include "server/handoff.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>

namespace {

constexpr const char* kDefaultConfig = "/etc/cachalot/cachalot.yaml";

void usage(std::ostream& out) {
    out << "Usage: cachalot [--config FILE] [--upgrade]\n"
           "       cachalot --check-config FILE\n"
           "       cachalot purge [--admin URL] [--soft] --url URL | --prefix PATH --host HOST | --tag TAG | --all\n"
           "       cachalot --help | --version\n\n"
           "A caching reverse proxy for HTTP APIs.\n\n"
           "  -c, --config FILE        run with this configuration (default " << kDefaultConfig << ")\n"
           "      --upgrade            take the listening sockets over from the process running with the\n"
           "                           same listen.upgrade_socket, then let it drain (zero-downtime restart)\n"
           "      --check-config FILE  validate FILE, print every problem, exit 0 if valid, 1 if not\n"
           "  -h, --help               show this help\n"
           "  -V, --version            show the version\n\n"
           "Signals: SIGTERM or SIGINT stop accepting and drain in-flight requests, then exit 0.\n"
           "         SIGHUP reads the configuration file again and applies it (see the README's \"Operating\").\n";
}

std::optional<cachalot::config::Config> load(const std::string& path) {
    auto parsed = cachalot::config::load_config(path);
    if (!parsed.ok()) {
        std::cerr << cachalot::config::format_errors(path, parsed.errors);
        return std::nullopt;
    }
    return std::move(parsed.config);
}

std::vector<cachalot::metrics::Sample> l1_samples(const cachalot::store::StoreStats& s) {
    auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    return {
        {"cachalot_l1_items", "Entries in the shared-memory L1", false, d(s.items)},
        {"cachalot_l1_bytes_used", "Bytes of L1 entries (headers included)", false, d(s.bytes_used)},
        {"cachalot_l1_capacity_bytes", "Bytes the L1 can hold", false, d(s.capacity_bytes)},
        {"cachalot_l1_hits_total", "L1 lookups that found a live entry", true, d(s.hits)},
        {"cachalot_l1_misses_total", "L1 lookups that found nothing usable", true, d(s.misses)},
        {"cachalot_l1_puts_total", "Entries stored in the L1", true, d(s.puts)},
        {"cachalot_l1_evictions_total", "Live L1 entries evicted to make room", true, d(s.evictions)},
        {"cachalot_l1_expirations_total", "Expired L1 entries removed", true, d(s.expirations)},
        {"cachalot_l1_refused_too_large_total", "Entries over max_object_size, not stored", true,
         d(s.refused_too_large)},
        {"cachalot_l1_lock_recoveries_total", "L1 locks taken over from a process that died holding them", true,
         d(s.lock_recoveries)},
        {"cachalot_l1_corrupt_dropped_total", "L1 entries or shards that failed validation and were dropped", true,
         d(s.corrupt_dropped)},
    };
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "purge") == 0)
        return cachalot::cli::purge(std::vector<std::string>(argv + 2, argv + argc), std::cout, std::cerr);
    std::string config_path = kDefaultConfig;
    bool upgrade = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 < argc) return std::string(argv[++i]);
            std::cerr << "cachalot: " << arg << " needs a file name\n";
            return std::nullopt;
        };
        if (arg == "-h" || arg == "--help") {
            usage(std::cout);
            return 0;
        } else if (arg == "-V" || arg == "--version") {
            std::cout << "cachalot " << CACHALOT_VERSION << "\n";
            return 0;
        } else if (arg == "--check-config") {
            auto path = value();
            if (!path) return 2;
            if (!load(*path)) return 1;
            std::cout << *path << ": ok\n";
            return 0;
        } else if (arg == "--upgrade") {
            upgrade = true;
        } else if (arg == "-c" || arg == "--config") {
            auto path = value();
            if (!path) return 2;
            config_path = *path;
        } else {
            std::cerr << "cachalot: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return 2;
        }
    }

    auto cfg = load(config_path);
    if (!cfg) return 1;
    try {
        cachalot::log::setup(cfg->logging);
        cachalot::metrics::Metrics metrics({}, {});  // (the series of routes and upstreams: server::Generation)

        // L1 opens before the listeners: a warm segment is ready for the first request.
        const auto& l1_cfg = cfg->cache.l1;
        std::optional<cachalot::store::ShmStore> l1;
        if (l1_cfg.size > 0) {
            cachalot::store::ShmStore::Options options;
            static_cast<cachalot::config::L1Cache&>(options) = l1_cfg;
            l1.emplace(options);
            spdlog::info("L1 {}: {} ({})", l1_cfg.path, cachalot::store::to_string(l1->open_state()), l1->describe());
            metrics.add_source([&l1] { return l1_samples(l1->stats()); });
        } else {
            spdlog::info("L1 disabled (cache.l1.size is 0)");
        }
        if (const auto& l2 = cfg->cache.l2; !l2.address.empty()) spdlog::info("L2: redis at {}", l2.address);
        else if (!l2.cluster.empty()) spdlog::info("L2: redis cluster, {} seed nodes", l2.cluster.size());
        else if (l2.enabled()) spdlog::info("L2: redis primary '{}' from {} sentinels", l2.sentinel.master_name,
                                            l2.sentinel.addresses.size());

        // (A refusal, here or later, leaves the running process serving as it was.)
        std::optional<cachalot::server::Takeover> takeover;
        if (upgrade) {
            if (cfg->listen.upgrade_socket.empty())
                throw std::runtime_error("--upgrade needs listen.upgrade_socket in " + config_path);
            takeover.emplace(cfg->listen.upgrade_socket);
            spdlog::info("upgrade: received the listening sockets of process {}", takeover->peer());
        }
        cachalot::server::Server server(std::move(*cfg), config_path, metrics, l1 ? &*l1 : nullptr,
                                        takeover ? &*takeover : nullptr);
        return server.run();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::cerr << "cachalot: " << e.what() << "\n";
        return 1;
    }
}
