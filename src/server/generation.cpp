#include "server/generation.hpp"

#include "cachalot/upstream/resolver.hpp"

namespace cachalot::server {
namespace {

// The series this configuration's requests are counted in.
metrics::Metrics series_for(const config::Config& cfg, const metrics::Metrics& metrics) {
    std::vector<std::string> routes;
    std::vector<metrics::UpstreamLabels> upstreams;
    for (const auto& r : cfg.routes) routes.push_back(r.name);
    for (const auto& u : cfg.upstreams) {
        std::vector<std::string> servers;
        for (const auto& s : u.servers) servers.push_back(s.label());
        upstreams.emplace_back(u.name, std::move(servers));
    }
    return metrics.with_config(routes, upstreams);
}

upstream::Balancer balancer_for(const config::Config& cfg, const metrics::Metrics& metrics, const Generation* previous) {
    if (previous) return upstream::Balancer(previous->balancer, cfg.upstreams, metrics);
    return upstream::Balancer(cfg.upstreams, metrics);
}

}  // namespace

Generation::Generation(std::shared_ptr<const config::Config> config, const metrics::Metrics& m,
                       net::any_io_executor ex, const Generation* previous)
    : cfg(std::move(config)),
      metrics(series_for(*cfg, m)),
      balancer(balancer_for(*cfg, metrics, previous)),
      health_checks(ex, cfg->upstreams, balancer),
      executor(std::move(ex)) {}

void start(const std::shared_ptr<Generation>& g) {
    // (Aliasing: the flag's owner is the generation, so the loops keep it alive until they see it.)
    std::shared_ptr<const std::atomic<bool>> stop(g, &g->retired);
    g->health_checks.start(stop);
    upstream::start_resolving(
        g->executor, *g->cfg, g->balancer,
        [raw = g.get()](std::size_t u, std::size_t s) { raw->health_checks.watch(u, s); }, stop);
}

}  // namespace cachalot::server
