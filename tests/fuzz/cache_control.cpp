// Cache-Control and the policy functions that read it, and targeted fields, on any field value.
#include "cachalot/http/freshness.hpp"

#include <cstdlib>

using namespace cachalot::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view value(reinterpret_cast<const char*>(data), size);
    const auto cc = parse_cache_control(value);
    for (const auto& d : {cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error, cc.max_stale, cc.min_fresh})
        if (d && (d->count() < 0 || *d > kMaxDelta)) std::abort();
    Fields response;
    response.insert("Cache-Control", value);
    const auto now = Time{Seconds{1'790'000'000}};
    (void)storability("GET", 200, Fields{}, CacheControl{}, response, cc);
    (void)freshness_lifetime(200, response, cc, now, Seconds{86400});
    (void)usability(cc, false, cc, Seconds{60}, Seconds{30}, Seconds{0});
    // The same value as a targeted field (RFC 9213): what it stands for must parse as well-formed
    // Cache-Control (it is built from a valid Dictionary).
    if (const auto targeted = targeted_cache_control(value); targeted && parse_cache_control(*targeted).malformed)
        std::abort();
    return 0;
}
