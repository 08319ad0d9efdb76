// HTTP dates in all three formats: whatever parses formats back to the same instant.
#include "cachalot/http/cache_control.hpp"

#include <cstdlib>

using namespace cachalot::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto now = Time{Seconds{1'790'000'000}};
    const auto t = parse_http_date(text, now);
    if (!t) return 0;
    const auto again = parse_http_date(format_http_date(*t), now);
    if (!again || *again != *t) std::abort();
    return 0;
}
