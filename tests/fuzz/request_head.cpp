// A request as a client sends it: Beast's parser (with trailers dropped), the framing checks,
// the target and Host parsers, and the cache keys built from what passed. Beyond "no crash":
// a normalized authority parses back to itself, and a key never holds a byte the target and
// Host checks refused.
#include "cachalot/cache/key.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/http/target.hpp"
#include "http/parser.hpp"

#include <boost/asio/buffer.hpp>

#include <cstdlib>

using namespace cachalot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    http::RequestParser parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    auto in = boost::asio::const_buffer(data, size);
    while (in.size() > 0 && !ec && !parser.is_done()) {
        const auto used = parser.put(in, ec);
        if (used == 0) break;
        in += used;
    }
    if (!parser.is_header_done()) return 0;
    auto& req = parser.get();
    (void)http::ambiguous_framing(req.base());

    auto target = http::parse_request_target(req.target());
    if (!target || req.count(bhttp::field::host) > 1) return 0;
    std::optional<http::Authority> authority = target->authority;
    if (!authority) authority = http::parse_authority(req[bhttp::field::host]);
    if (!authority) return 0;
    auto again = http::parse_authority(authority->to_string());
    if (!again || !(*again == *authority)) std::abort();  // normalization is idempotent

    http::strip_hop_by_hop(req.base());
    config::RouteKey rules{true, {"utm_*"}, {"Accept-Language"}, {"session"}};
    const auto key = cache::primary_key(req.method_string(), cache::normalized_url("http", *authority, target->origin_form, rules), req.base(), rules);
    // Up to the first header rule, the key is the method, the authority and the target: no
    // line break or control byte from the client can get there.
    const auto url_part = key.substr(0, key.find("\nh:"));
    for (unsigned char c : url_part)
        if (c < 0x20 || c >= 0x7f) std::abort();
    (void)cache::variant_key(cache::vary_names(req.base()), req.base());
    return 0;
}
