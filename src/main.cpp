// cachalot: CLI, configuration, logging, metrics and the server, wired together.

#include "cachalot/config/config.hpp"
#include "cachalot/log/log.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/server/server.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>

namespace {

constexpr const char* kDefaultConfig = "/etc/cachalot/cachalot.yaml";

void usage(std::ostream& out) {
    out << "Usage: cachalot [--config FILE]\n"
           "       cachalot --check-config FILE\n"
           "       cachalot --help | --version\n\n"
           "A caching reverse proxy for HTTP APIs.\n\n"
           "  -c, --config FILE        run with this configuration (default " << kDefaultConfig << ")\n"
           "      --check-config FILE  validate FILE, print every problem, exit 0 if valid, 1 if not\n"
           "  -h, --help               show this help\n"
           "  -V, --version            show the version\n\n"
           "Signals: SIGTERM or SIGINT stop accepting and drain in-flight requests, then exit 0.\n";
}

std::optional<cachalot::config::Config> load(const std::string& path) {
    auto parsed = cachalot::config::load_config(path);
    if (!parsed.ok()) {
        std::cerr << cachalot::config::format_errors(path, parsed.errors);
        return std::nullopt;
    }
    return std::move(parsed.config);
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path = kDefaultConfig;
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
        std::vector<std::string> routes, upstreams;
        for (const auto& r : cfg->routes) routes.push_back(r.name);
        for (const auto& u : cfg->upstreams) upstreams.push_back(u.name);
        cachalot::metrics::Metrics metrics(routes, upstreams);
        cachalot::server::Server server(*cfg, metrics);
        return server.run();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::cerr << "cachalot: " << e.what() << "\n";
        return 1;
    }
}
