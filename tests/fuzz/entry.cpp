// The entry decoder reads bytes from the shared-memory file and from Redis: untrusted. Whatever
// it accepts re-encodes and decodes to the same entry.
#include "cachalot/cache/entry.hpp"

#include <cstdlib>

using namespace cachalot::cache;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto entry = decode_entry(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!entry) return 0;
    const auto again = decode_entry(encode_entry(*entry));
    if (!again || again->status != entry->status || again->headers != entry->headers || again->body != entry->body ||
        again->vary != entry->vary || again->variant != entry->variant || again->vary_epoch != entry->vary_epoch ||
        again->request_time != entry->request_time || again->response_time != entry->response_time ||
        again->lifetime_jitter != entry->lifetime_jitter || again->fetched_ms != entry->fetched_ms ||
        again->purge_slots != entry->purge_slots)
        std::abort();
    return 0;
}
