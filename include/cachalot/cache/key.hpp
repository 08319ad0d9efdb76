#pragma once
// Cache keys: the primary key names a resource (method class, normalized URL, route-chosen
// headers and cookies); the variant key picks one of its stored variants by the request
// headers the response's Vary nominated. Only normalizations that cannot merge two different
// resources are applied (no dot-segment removal, no case folding of paths).

#include "cachalot/config/config.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/http/target.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace cachalot::cache {

/// scheme://authority/path?query of an origin-form `target`, with percent-encodings
/// upper-cased and unreserved ones decoded, the query filtered and (optionally) sorted by the
/// route's key rules. The authority is normalized by http::parse_authority: a key is never
/// built from an unvalidated host. Purges by URL name this.
std::string normalized_url(std::string_view scheme, const http::Authority& authority, std::string_view target,
                           const config::RouteKey& rules);

/// A path with its percent-encodings normalized as in normalized_url (for purges by prefix).
std::string normalized_path(std::string_view path);

/// The primary key of a request: "GET" for GET and HEAD (a HEAD is answered from a stored
/// GET), the method itself otherwise; then its normalized_url; then the route's headers and
/// cookies (config::RouteKey).
std::string primary_key(std::string_view method, std::string_view url, const http::Fields& request,
                        const config::RouteKey& rules);

/// The response's Vary names: lower-case, sorted, without duplicates. {"*"} for Vary: *
/// (such a response is never served from cache).
std::vector<std::string> vary_names(const http::Fields& response);

/// The variant key: for each nominated header, the request's value normalized (list
/// elements trimmed and sorted; Accept-Encoding reduced to the codings a cache can serve;
/// Accept-Language as normalized_accept_language says).
std::string variant_key(const std::vector<std::string>& vary, const http::Fields& request);

/// Accept-Encoding reduced to the content codings worth a separate variant, sorted:
/// "br", "gzip", "zstd" when accepted with q > 0 (identity is always acceptable).
std::string normalized_accept_encoding(std::string_view value);

/// Accept-Language with each language range lower-cased (ranges are case-insensitive, RFC
/// 4647 §2), its weight written the shortest way (q=1 and none are the same, "q=0.50" is
/// "q=0.5"), ranges refused with q=0 left out, sorted: lists that ask for the same thing share
/// a variant. Weights stay: "en;q=0.5, fr" and "en, fr;q=0.5" may get different answers.
std::string normalized_accept_language(std::string_view value);

}  // namespace cachalot::cache
