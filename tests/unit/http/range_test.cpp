#include "cachalot/http/range.hpp"

#include <catch2/catch.hpp>

using namespace cachalot::http;
using namespace std::chrono;

namespace {
const Time kNow = sys_days{2026y / November / 23} + 12h;
Fields make(std::initializer_list<std::pair<const char*, std::string>> list) {
    Fields f;
    for (auto& [n, v] : list) f.insert(n, v);
    return f;
}
using Kind = RangeAnswer::Kind;
}  // namespace

TEST_CASE("Range against a complete body of 1000 bytes, table") {
    struct Row {
        const char* range;
        Kind kind;
        std::vector<ByteRange> ranges;
    };
    auto row = GENERATE(values<Row>({
        {"bytes=0-99", Kind::Partial, {{0, 99}}},
        {"bytes=900-", Kind::Partial, {{900, 999}}},            // open-ended
        {"bytes=-100", Kind::Partial, {{900, 999}}},            // suffix
        {"bytes=-5000", Kind::Partial, {{0, 999}}},             // a suffix longer than the body: all of it
        {"bytes=990-5000", Kind::Partial, {{990, 999}}},        // last past the end: up to the end
        {"BYTES = 0-0", Kind::Full, {}},                        // (no whitespace around '=')
        {"Bytes=0-0", Kind::Partial, {{0, 0}}},                 // the unit is case-insensitive
        {"bytes= 0-9 , 20-29", Kind::Partial, {{0, 9}, {20, 29}}},
        {"bytes=0-9,,20-29", Kind::Partial, {{0, 9}, {20, 29}}},  // empty list elements are ignored
        {"bytes=1000-", Kind::Unsatisfiable, {}},
        {"bytes=-0", Kind::Unsatisfiable, {}},
        {"bytes=1000-1001, 2000-", Kind::Unsatisfiable, {}},
        {"bytes=0-9, 5000-", Kind::Partial, {{0, 9}}},  // the unsatisfiable one is left out
        {"bytes=0-9, 5-20", Kind::Full, {}},            // overlapping: the whole body
        {"bytes=20-29, 0-9", Kind::Full, {}},           // out of order: the whole body
        {"bytes=9-0", Kind::Full, {}},                  // last before first: invalid, ignored
        {"bytes=a-9", Kind::Full, {}},
        {"bytes=-", Kind::Full, {}},
        {"bytes=", Kind::Full, {}},
        {"bytes=0-9;x", Kind::Full, {}},
        {"items=0-9", Kind::Full, {}},  // another unit: ignored
        {"bytes=99999999999999999999-", Kind::Full, {}},  // does not fit 64 bits: invalid
        {"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32",
         Kind::Full, {}},  // more than kMaxRanges
    }));
    INFO(row.range);
    const auto answer = answer_range(make({{"Range", row.range}}), Fields{}, 1000, kNow);
    CHECK(answer.kind == row.kind);
    CHECK(answer.ranges == (row.kind == Kind::Partial ? row.ranges : std::vector<ByteRange>{}));
}

TEST_CASE("Range: no Range field is the whole body; an empty body satisfies no range") {
    CHECK(answer_range(Fields{}, Fields{}, 10, kNow).kind == Kind::Full);
    CHECK(answer_range(make({{"Range", "bytes=0-"}}), Fields{}, 0, kNow).kind == Kind::Unsatisfiable);
    CHECK(answer_range(make({{"Range", "bytes=-1"}}), Fields{}, 0, kNow).kind == Kind::Unsatisfiable);
}

TEST_CASE("If-Range: the range applies only to the stored representation, compared strongly, table") {
    const auto date = format_http_date(kNow);
    const auto earlier = format_http_date(kNow - 60s);
    struct Row {
        std::string if_range;
        std::vector<std::pair<const char*, std::string>> stored;
        bool applies;
    };
    auto row = GENERATE_COPY(values<Row>({
        {"\"v1\"", {{"ETag", "\"v1\""}}, true},
        {"\"v2\"", {{"ETag", "\"v1\""}}, false},
        {"W/\"v1\"", {{"ETag", "W/\"v1\""}}, false},  // weak tags never match
        {"\"v1\"", {{"ETag", "W/\"v1\""}}, false},
        {"\"v1\"", {}, false},
        {earlier, {{"Last-Modified", earlier}, {"Date", date}}, true},  // a strong date: Date a minute later
        {earlier, {{"Last-Modified", earlier}, {"Date", earlier}}, false},  // same second: weak
        {earlier, {{"Last-Modified", earlier}}, false},                     // no Date: weak
        {date, {{"Last-Modified", earlier}, {"Date", date}}, false},         // not exactly the date
        {"not a date", {{"Last-Modified", earlier}, {"Date", date}}, false},
    }));
    INFO(row.if_range);
    Fields stored;
    for (const auto& [n, v] : row.stored) stored.insert(n, v);
    const auto answer = answer_range(make({{"Range", "bytes=0-9"}, {"If-Range", row.if_range}}), stored, 100, kNow);
    CHECK(answer.kind == (row.applies ? Kind::Partial : Kind::Full));
}

TEST_CASE("Content-Range values for a part and for a 416") {
    CHECK(content_range({0, 99}, 1234) == "bytes 0-99/1234");
    CHECK(unsatisfied_range(1234) == "bytes */1234");
}

TEST_CASE("multipart/byteranges: each part with its type and range, closed by the boundary") {
    const auto body = multipart_byteranges("0123456789", 0, 10, {{0, 1}, {8, 9}}, "text/plain", "B");
    CHECK(body ==
          "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
          "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89"
          "\r\n--B--\r\n");
    CHECK(new_boundary() != new_boundary());
    // From a stored part: bytes 10-19 of 30 held, ranges inside them.
    CHECK(multipart_byteranges("abcdefghij", 10, 30, {{10, 10}, {19, 19}}, "", "B") ==
          "\r\n--B\r\nContent-Range: bytes 10-10/30\r\n\r\na\r\n--B\r\nContent-Range: bytes 19-19/30\r\n\r\nj"
          "\r\n--B--\r\n");
}

TEST_CASE("Content-Range of a stored part: one range and its complete length, table") {
    struct Row {
        const char* value;
        bool valid;
        ByteRange range;
        std::uint64_t length;
    };
    auto row = GENERATE(values<Row>({
        {"bytes 0-99/1234", true, {0, 99}, 1234},
        {"Bytes 5-5/6", true, {5, 5}, 6},
        {" bytes 0-0/1 ", true, {0, 0}, 1},
        {"bytes 0-99/*", false, {}, 0},     // the complete length unknown
        {"bytes */1234", false, {}, 0},     // a 416's
        {"bytes 10-5/20", false, {}, 0},    // last before first
        {"bytes 0-20/20", false, {}, 0},    // last past the end
        {"bytes 0-1,3-4/20", false, {}, 0},
        {"items 0-1/20", false, {}, 0},
        {"bytes=0-1/20", false, {}, 0},
        {"bytes -1/20", false, {}, 0},
    }));
    INFO(row.value);
    const auto part = parse_content_range(row.value);
    REQUIRE(part.has_value() == row.valid);
    if (part) {
        CHECK(part->range == row.range);
        CHECK(part->length == row.length);
    }
}
