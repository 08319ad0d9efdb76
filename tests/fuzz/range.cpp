// Range and If-Range from clients, on any bytes: the parts served always lie inside the body,
// ascend without overlapping and are few; an unsatisfiable answer names no part.
#include "cachalot/http/range.hpp"

#include <cstdlib>

using namespace cachalot::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // The first line is the Range value, the rest If-Range (when there is a rest).
    const auto newline = text.find('\n');
    Fields request;
    request.insert("Range", text.substr(0, newline));
    if (newline != std::string_view::npos) request.insert("If-Range", text.substr(newline + 1));
    Fields stored;
    stored.insert("ETag", "\"v1\"");
    stored.insert("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT");
    stored.insert("Date", "Sun, 06 Nov 1994 08:49:40 GMT");
    const auto now = Time{Seconds{1'790'000'000}};
    for (const std::uint64_t length : {0ull, 1ull, 1000ull, 18446744073709551615ull}) {
        const auto answer = answer_range(request, stored, length, now);
        if (answer.kind != RangeAnswer::Kind::Partial) {
            if (!answer.ranges.empty() && answer.kind == RangeAnswer::Kind::Full) std::abort();
            continue;
        }
        if (answer.ranges.empty() || answer.ranges.size() > kMaxRanges) std::abort();
        for (std::size_t i = 0; i < answer.ranges.size(); ++i) {
            const auto& r = answer.ranges[i];
            if (r.first > r.last || r.last >= length) std::abort();
            if (i > 0 && r.first <= answer.ranges[i - 1].last) std::abort();
        }
    }
    return 0;
}
