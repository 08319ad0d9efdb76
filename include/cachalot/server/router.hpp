#pragma once
// Route matching: the first route whose host and path prefix match takes the request.

#include "cachalot/config/config.hpp"

#include <optional>
#include <string_view>

namespace cachalot::server {

/// The request's host, lower-cased and without port: from an absolute-form target if there is
/// one, else from the Host field.
std::string normalized_host(std::string_view target, std::string_view host_field);

/// The path of a request target (origin-form or absolute-form), without the query.
std::string_view target_path(std::string_view target);

/// Index of the first matching route, or nothing.
std::optional<std::size_t> match_route(const std::vector<config::Route>& routes, std::string_view host,
                                       std::string_view path);

}  // namespace cachalot::server
