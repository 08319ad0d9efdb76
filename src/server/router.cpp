#include "cachalot/server/router.hpp"

#include <algorithm>

namespace cachalot::server {
namespace {

// The authority of an absolute-form target and where the path starts, or {"", 0}.
std::pair<std::string_view, std::size_t> authority_of(std::string_view target) {
    for (std::string_view scheme : {"http://", "https://"}) {
        if (target.size() > scheme.size() &&
            std::equal(scheme.begin(), scheme.end(), target.begin(),
                       [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
            auto rest = target.substr(scheme.size());
            auto authority = rest.substr(0, rest.find_first_of("/?"));
            return {authority, scheme.size() + authority.size()};
        }
    }
    return {{}, 0};
}

}  // namespace

std::string normalized_host(std::string_view target, std::string_view host_field) {
    auto host = authority_of(target).first;
    if (host.empty()) host = host_field;
    if (auto at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
    if (!host.empty() && host.front() == '[') {  // IPv6 literal
        host = host.substr(0, host.find(']') + 1);
    } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
        host = host.substr(0, colon);
    }
    std::string out(host);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

std::string_view target_path(std::string_view target) {
    if (auto [authority, path_start] = authority_of(target); path_start > 0) {
        target = target.substr(path_start);
        if (target.empty() || target.front() == '?') return "/";
    }
    return target.substr(0, target.find('?'));
}

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
