#pragma once
// Range requests answered from a complete representation (RFC 9110 §14): which bytes a
// `Range: bytes=…` asks for, whether `If-Range` lets it apply, and the fields and bodies of the
// 206 and 416 answers.

#include "cachalot/http/cache_control.hpp"
#include "cachalot/http/headers.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::http {

/// Bytes `first` to `last` of a representation, both included.
struct ByteRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::uint64_t size() const { return last - first + 1; }
    bool operator==(const ByteRange&) const = default;
};

/// At most this many ranges in one request are served; more are answered with the whole
/// representation, as are overlapping or out-of-order ones (RFC 9110 §14.2 allows both: they
/// cost the server more than they save, and are a known amplification trick).
inline constexpr std::size_t kMaxRanges = 16;

/// What a request gets from a complete representation of some length.
struct RangeAnswer {
    enum class Kind { Full, Partial, Unsatisfiable };
    Kind kind = Kind::Full;
    std::vector<ByteRange> ranges;  // Partial: one or more, ascending, not overlapping
};

/// The answer to `request` from a complete 200 whose fields are `stored` and whose body has
/// `length` bytes. Full when the request has no Range, or one that is not a valid `bytes` range
/// set (ignored, RFC 9110 §14.2), or when its If-Range does not match (§13.1.5: strong
/// comparison with the ETag, or exactly the Last-Modified date when that is a strong validator:
/// the Date is at least a second later, §8.8.2.2);
/// Unsatisfiable when no range starts inside the body.
RangeAnswer answer_range(const Fields& request, const Fields& stored, std::uint64_t length, Time now);

/// True when the request carries a Range field (whatever its value).
bool has_range(const Fields& request);

/// What a single-part 206 holds: bytes `range` of a representation of `length` bytes.
struct Part {
    ByteRange range;
    std::uint64_t length = 0;
};
/// A `Content-Range` of one part with its complete length ("bytes 0-99/1234", first ≤ last <
/// length); nothing for anything else ("bytes 0-99/*", "bytes */1234", a list, another unit).
std::optional<Part> parse_content_range(std::string_view value);

/// `Content-Range` of a part: "bytes 0-99/1234".
std::string content_range(ByteRange range, std::uint64_t length);
/// `Content-Range` of a 416: "bytes */1234".
std::string unsatisfied_range(std::uint64_t length);

/// A multipart/byteranges body (RFC 9110 §14.6) of `ranges` of a representation of `length`
/// bytes, taken from `bytes`, which hold its bytes from `offset` on (every range inside them);
/// each part with `content_type` (when not empty) and its Content-Range, separated by `boundary`.
std::string multipart_byteranges(std::string_view bytes, std::uint64_t offset, std::uint64_t length,
                                 const std::vector<ByteRange>& ranges, std::string_view content_type,
                                 std::string_view boundary);
/// A boundary for a multipart body: random, so that no body can hold it by design.
std::string new_boundary();

}  // namespace cachalot::http
