// The L2 envelope around every value read from Redis (untrusted): whatever opens, wraps back to
// the same bytes; the entry inside goes through the entry decoder.
#include "cachalot/cache/entry.hpp"
#include "store/redis/envelope.hpp"

#include <cstdlib>

using namespace cachalot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const auto opened = store::redis::envelope_open(bytes);
    if (!opened) return 0;
    if (store::redis::envelope_wrap(opened->value, opened->expiry) != bytes) std::abort();
    (void)cache::decode_entry(opened->value);
    return 0;
}
