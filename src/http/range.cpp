#include "cachalot/http/range.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <random>

namespace cachalot::http {
namespace {

// One range-spec as written: first-last, first- (last empty) or -suffix (first empty).
struct Spec {
    std::optional<std::uint64_t> first, last;
};

std::optional<std::uint64_t> digits(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;  // (19 digits always fit)
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
}

// `bytes=` and a non-empty list of range-specs (RFC 9110 §14.1.1); nothing when it is not that.
std::optional<std::vector<Spec>> parse_ranges(std::string_view value) {
    value = trim(value);
    const auto eq = value.find('=');
    if (eq == std::string_view::npos || !iequals(value.substr(0, eq), "bytes")) return std::nullopt;
    std::vector<Spec> specs;
    std::string_view rest = value.substr(eq + 1);
    for (;;) {
        const auto comma = rest.find(',');
        const auto item = trim(rest.substr(0, comma));
        if (!item.empty()) {  // (empty list elements are allowed and ignored, RFC 9110 §5.6.1)
            const auto dash = item.find('-');
            if (dash == std::string_view::npos) return std::nullopt;
            Spec spec;
            const auto a = item.substr(0, dash), b = item.substr(dash + 1);
            if (!a.empty() && !(spec.first = digits(a))) return std::nullopt;
            if (!b.empty() && !(spec.last = digits(b))) return std::nullopt;
            if (!spec.first && !spec.last) return std::nullopt;
            if (spec.first && spec.last && *spec.last < *spec.first) return std::nullopt;
            specs.push_back(spec);
            if (specs.size() > kMaxRanges) return specs;  // enough to know there are too many
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    if (specs.empty()) return std::nullopt;
    return specs;
}

bool weak(std::string_view etag) { return etag.substr(0, 2) == "W/"; }

// If-Range (RFC 9110 §13.1.5): the range applies only to the representation the client has.
bool if_range_holds(const Fields& request, const Fields& stored, Time now) {
    const auto if_range = field_values(request, "If-Range");
    const auto value = trim(if_range);
    if (value.empty()) return request.count("If-Range") == 0;
    if (value.front() == '"' || weak(value)) {
        const auto stored_etag = field_values(stored, "ETag");
        const auto etag = trim(stored_etag);
        return !weak(value) && !weak(etag) && value.size() >= 2 && value.back() == '"' && value == etag;
    }
    const auto since = parse_http_date(value, now);
    const auto modified = parse_http_date(field_values(stored, "Last-Modified"), now);
    const auto date = parse_http_date(field_values(stored, "Date"), now);
    return since && modified && date && *since == *modified && *date >= *modified + Seconds{1};
}

}  // namespace

bool has_range(const Fields& request) { return request.count(bhttp::field::range) > 0; }

RangeAnswer answer_range(const Fields& request, const Fields& stored, std::uint64_t length, Time now) {
    RangeAnswer full;
    if (!has_range(request)) return full;
    const auto specs = parse_ranges(field_values(request, "Range"));
    if (!specs || specs->size() > kMaxRanges || !if_range_holds(request, stored, now)) return full;
    RangeAnswer answer;
    for (const auto& s : *specs) {
        ByteRange r;
        if (!s.first) {  // the last *s.last bytes
            if (*s.last == 0 || length == 0) continue;
            r.first = length - std::min(*s.last, length);
            r.last = length - 1;
        } else {
            if (*s.first >= length) continue;
            r.first = *s.first;
            r.last = s.last ? std::min(*s.last, length - 1) : length - 1;
        }
        answer.ranges.push_back(r);
    }
    if (answer.ranges.empty()) {
        answer.kind = RangeAnswer::Kind::Unsatisfiable;
        return answer;
    }
    for (std::size_t i = 1; i < answer.ranges.size(); ++i)
        if (answer.ranges[i].first <= answer.ranges[i - 1].last) return full;
    answer.kind = RangeAnswer::Kind::Partial;
    return answer;
}

std::optional<Part> parse_content_range(std::string_view value) {
    value = trim(value);
    const auto space = value.find(' ');
    if (space == std::string_view::npos || !iequals(value.substr(0, space), "bytes")) return std::nullopt;
    const auto spec = value.substr(space + 1);
    const auto dash = spec.find('-'), slash = spec.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
    const auto first = digits(spec.substr(0, dash));
    const auto last = digits(spec.substr(dash + 1, slash - dash - 1));
    const auto length = digits(spec.substr(slash + 1));
    if (!first || !last || !length || *last < *first || *last >= *length) return std::nullopt;
    return Part{{*first, *last}, *length};
}

std::string content_range(ByteRange range, std::uint64_t length) {
    return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(length);
}

std::string unsatisfied_range(std::uint64_t length) { return "bytes */" + std::to_string(length); }

std::string multipart_byteranges(std::string_view bytes, std::uint64_t offset, std::uint64_t length,
                                 const std::vector<ByteRange>& ranges, std::string_view content_type,
                                 std::string_view boundary) {
    std::string out;
    for (const auto& r : ranges) {
        out.append("\r\n--").append(boundary).append("\r\n");
        if (!content_type.empty()) out.append("Content-Type: ").append(content_type).append("\r\n");
        out.append("Content-Range: ").append(content_range(r, length)).append("\r\n\r\n");
        out.append(bytes.substr(static_cast<std::size_t>(r.first - offset), static_cast<std::size_t>(r.size())));
    }
    out.append("\r\n--").append(boundary).append("--\r\n");
    return out;
}

std::string new_boundary() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string b = "cachalot-";
    for (int i = 0; i < 2; ++i) {
        auto n = rng();
        for (int j = 0; j < 16; ++j, n >>= 4) b += kHex[n & 15];
    }
    return b;
}

}  // namespace cachalot::http
