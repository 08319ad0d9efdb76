#pragma once
// Route matching: the first route whose host and path prefix match takes the request.

#include "cachalot/config/config.hpp"

#include <optional>
#include <string_view>

namespace cachalot::server {

/// Index of the first matching route, or nothing. `host` is http::Authority::host (validated,
/// lower case, no port), `path` the target's path without its query.
std::optional<std::size_t> match_route(const std::vector<config::Route>& routes, std::string_view host,
                                       std::string_view path);

}  // namespace cachalot::server
