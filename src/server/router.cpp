#include "cachalot/server/router.hpp"

namespace cachalot::server {

std::optional<std::size_t> match_route(const std::vector<config::Route>& routes, std::string_view host,
                                       std::string_view path) {
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const auto& m = routes[i].match;
        bool host_ok = m.host.empty() || m.host == "*" || m.host == host ||
                       (m.host.rfind("*.", 0) == 0 && host.size() > m.host.size() - 1 &&
                        host.substr(host.size() - (m.host.size() - 1)) == std::string_view(m.host).substr(1));
        if (host_ok && path.substr(0, m.path_prefix.size()) == m.path_prefix) return i;
    }
    return std::nullopt;
}

}  // namespace cachalot::server
