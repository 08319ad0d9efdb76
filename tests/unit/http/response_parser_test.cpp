#include "core/net.hpp"
#include "http/response_parser.hpp"

#include <boost/beast/http/parser.hpp>
#include <catch2/catch.hpp>

#include <vector>

using namespace cachalot;
using http::ResponseParser;

namespace {

// Feeds `raw` the way core::read does (a buffer that grows by `step` bytes at a time, what the
// parser used taken off its front), then the connection's close when `eof`. The first error
// other than need_more, or put_eof's.
beast::error_code feed(ResponseParser& parser, std::string_view raw, std::size_t step = SIZE_MAX, bool eof = false) {
    std::string buffer;
    std::size_t given = 0;
    for (;;) {
        for (;;) {  // what the buffer holds
            if (parser.is_done()) return {};
            beast::error_code ec;
            const auto used = parser.put(net::buffer(buffer), ec);
            buffer.erase(0, used);
            if (ec == bhttp::error::need_more) break;
            if (ec) return ec;
            if (used == 0) break;
        }
        if (given == raw.size()) {
            beast::error_code ec;
            if (eof) parser.put_eof(ec);
            return ec;
        }
        const auto n = std::min(step, raw.size() - given);
        buffer.append(raw.substr(given, n));
        given += n;
    }
}

std::vector<std::pair<std::string, std::string>> fields_of(const bhttp::fields& fields) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& f : fields) out.emplace_back(f.name_string(), f.value());
    return out;
}

}  // namespace

TEST_CASE("response parser: a Content-Length response, its fields in order, its body, nothing past it") {
    const std::string raw =
        "HTTP/1.1 200 OK\r\nServer: o\r\nContent-Type: text/plain\r\nX-Empty:\r\nX-Spaces:  a b  \r\n"
        "Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n";
    for (std::size_t step : {std::size_t{1}, std::size_t{7}, SIZE_MAX}) {
        INFO("step " << step);
        ResponseParser parser;
        std::string buffer = raw;
        beast::error_code ec;
        auto used = parser.put(net::buffer(buffer), ec);
        if (step != SIZE_MAX) {  // fed piece by piece: the same result
            ResponseParser pieces;
            REQUIRE_FALSE(feed(pieces, raw.substr(0, raw.size() - 17), step));
            CHECK(pieces.is_done());
            CHECK(pieces.get().body() == "hello");
            CHECK(fields_of(pieces.get()) == fields_of(parser.get()));
            continue;
        }
        REQUIRE_FALSE(ec);
        CHECK(parser.is_header_done());
        CHECK_FALSE(parser.is_done());
        buffer.erase(0, used);
        used = parser.put(net::buffer(buffer), ec);
        REQUIRE_FALSE(ec);
        CHECK(used == 5);  // never past the message's end: the next response stays in the buffer
        CHECK(parser.is_done());
        const auto& res = parser.get();
        CHECK(res.result_int() == 200);
        CHECK(res.version() == 11);
        CHECK(fields_of(res) == std::vector<std::pair<std::string, std::string>>{
                                    {"Server", "o"}, {"Content-Type", "text/plain"}, {"X-Empty", ""},
                                    {"X-Spaces", "a b"}, {"Content-Length", "5"}});
        CHECK(res[bhttp::field::content_type] == "text/plain");  // the field codes are Beast's
        CHECK(res.body() == "hello");
        CHECK(parser.keep_alive());
        CHECK_FALSE(parser.need_eof());
        CHECK(parser.content_length() == std::optional<std::uint64_t>(5));
    }
}

TEST_CASE("response parser: long values of tabs, spaces, visible ASCII and obs-text are accepted as they are") {
    const std::string value = "a\tb c~d\xc3\xa9\xff\x80 0123456789 \x21\x7e\t\t=;,\"quoted\"\xe2\x82\xac end";
    ResponseParser parser;
    REQUIRE_FALSE(feed(parser, "HTTP/1.1 200 A reason\twith tabs and caf\xc3\xa9s\r\nX-Long: " + value +
                                   "\r\nContent-Length: 0\r\n\r\n"));
    CHECK(parser.get()["X-Long"] == value);
    CHECK(parser.get().reason() == "A reason\twith tabs and caf\xc3\xa9s");
}

TEST_CASE("response parser: the reason phrase is kept only when it is not the usual one") {
    ResponseParser usual, own;
    REQUIRE_FALSE(feed(usual, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    REQUIRE_FALSE(feed(own, "HTTP/1.1 404 Nothing Here\r\nContent-Length: 0\r\n\r\n"));
    CHECK(usual.get().reason() == "Not Found");
    CHECK(own.get().reason() == "Nothing Here");
    ResponseParser none;
    REQUIRE_FALSE(feed(none, "HTTP/1.1 204\r\n\r\n"));
    CHECK(none.get().result_int() == 204);
    CHECK(none.is_done());
}

TEST_CASE("response parser: a chunked body is decoded, its extensions ignored, its trailer fields dropped") {
    const std::string raw =
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2;name=value\r\nok\r\nA ; x=\"y\"\r\n0123456789\r\n0\r\nSet-Cookie: s=evil\r\nCache-Control: no-store\r\n\r\n";
    for (std::size_t step : {std::size_t{1}, std::size_t{3}, SIZE_MAX}) {
        INFO("step " << step);
        ResponseParser parser;
        REQUIRE_FALSE(feed(parser, raw, step));
        REQUIRE(parser.is_done());
        const auto& res = parser.get();
        CHECK(res.body() == "ok0123456789");
        CHECK(res[bhttp::field::cache_control] == "max-age=60");
        CHECK(res.count(bhttp::field::cache_control) == 1);
        CHECK(res.count(bhttp::field::set_cookie) == 0);
        CHECK_FALSE(parser.content_length());
        CHECK(parser.keep_alive());
    }
    ResponseParser no_trailer;
    REQUIRE_FALSE(feed(no_trailer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 2));
    CHECK(no_trailer.is_done());
    CHECK(no_trailer.get().body() == "abc");
}

TEST_CASE("response parser: without framing fields the body ends with the connection") {
    ResponseParser parser;
    REQUIRE_FALSE(feed(parser, "HTTP/1.1 200 OK\r\nServer: o\r\n\r\nuntil close", 4, true));
    CHECK(parser.is_done());
    CHECK(parser.need_eof());
    CHECK_FALSE(parser.keep_alive());
    CHECK(parser.get().body() == "until close");

    ResponseParser cut;  // a Content-Length body cut short by the close is partial
    CHECK(feed(cut, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", SIZE_MAX, true) == bhttp::error::partial_message);
    ResponseParser cut_chunked;
    CHECK(feed(cut_chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", SIZE_MAX, true) ==
          bhttp::error::partial_message);
    ResponseParser cut_head;
    CHECK(feed(cut_head, "HTTP/1.1 200 OK\r\nServer:", SIZE_MAX, true) == bhttp::error::partial_message);
}

TEST_CASE("response parser: HEAD, 1xx, 204 and 304 responses have no body, whatever their head says") {
    auto check_no_body = [](std::string raw, bool head) {
        INFO(raw);
        ResponseParser parser;
        parser.skip(head);
        beast::error_code ec;
        const auto used = parser.put(net::buffer(raw), ec);
        REQUIRE_FALSE(ec);
        CHECK(parser.is_done());
        CHECK(raw.substr(used) == "next");  // the bytes after the head are not this response's
        CHECK(parser.get().body().empty());
    };
    check_no_body("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext", true);
    check_no_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnext", true);
    check_no_body("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nnext", false);
    check_no_body("HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nnext", false);
    check_no_body("HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nnext", false);
}

TEST_CASE("response parser: keep-alive follows the version and Connection") {
    auto keep_alive = [](std::string raw) {
        ResponseParser parser;
        REQUIRE_FALSE(feed(parser, raw));
        return parser.keep_alive();
    };
    CHECK(keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    CHECK_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"));
    CHECK_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: x-a, close\r\nContent-Length: 0\r\n\r\n"));
    CHECK_FALSE(keep_alive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    CHECK(keep_alive("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
    CHECK(keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"));
}

TEST_CASE("response parser: what cannot be passed on faithfully is refused, with Beast's error and a reason") {
    struct Case {
        const char* what;
        std::string raw;
        bhttp::error error;
    };
    const std::string ok = "HTTP/1.1 200 OK\r\n";
    const Case cases[] = {
        {"a bare LF in the head", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", bhttp::error::bad_line_ending},
        {"a bare LF after a field", ok + "A: b\nContent-Length: 0\r\n\r\n", bhttp::error::bad_line_ending},
        {"a CR inside a value", ok + "A: b\rc\r\nContent-Length: 0\r\n\r\n", bhttp::error::bad_value},
        {"obs-fold", ok + "A: b\r\n c\r\nContent-Length: 0\r\n\r\n", bhttp::error::bad_value},
        {"a folded Transfer-Encoding", ok + "A: b\r\n Transfer-Encoding: chunked\r\n\r\n", bhttp::error::bad_value},
        {"a space before the colon", ok + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", bhttp::error::bad_field},
        {"a field without a colon", ok + "Server o\r\n\r\n", bhttp::error::bad_field},
        {"an empty field name", ok + ": o\r\n\r\n", bhttp::error::bad_field},
        {"a NUL in a value", ok + std::string("A: a\0b\r\n\r\n", 10), bhttp::error::bad_value},
        {"a control character in a value", ok + "A: a\x01" "b\r\n\r\n", bhttp::error::bad_value},
        {"DEL in a value", ok + "A: a\x7f" "b\r\n\r\n", bhttp::error::bad_value},
        // (Values are checked 8 bytes at a time: the same refusals deep in a long one.)
        {"a control character in a long value", ok + "A: abcdefghij\x01klmnopqrstuv\r\n\r\n", bhttp::error::bad_value},
        {"DEL in a long value", ok + "A: abcdefghijklmnop\x7fq\r\n\r\n", bhttp::error::bad_value},
        {"a CR in a long value", ok + "A: abcdefghijklmnop\rqrstuvwx\r\n\r\n", bhttp::error::bad_value},
        {"a NUL in a long value", ok + std::string("A: abcdefgh\0ijklmnop\r\n\r\n", 24), bhttp::error::bad_value},
        {"a control character in a long reason", "HTTP/1.1 200 Everything is \x1b fine\r\n\r\n", bhttp::error::bad_reason},
        {"both framing fields", ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", bhttp::error::bad_transfer_encoding},
        {"another coding", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n", bhttp::error::bad_transfer_encoding},
        {"chunked twice", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", bhttp::error::bad_transfer_encoding},
        {"identity", ok + "Transfer-Encoding: identity\r\n\r\n", bhttp::error::bad_transfer_encoding},
        {"differing Content-Length", ok + "Content-Length: 3\r\nContent-Length: 5\r\n\r\n", bhttp::error::bad_content_length},
        {"a Content-Length list", ok + "Content-Length: 3, 5\r\n\r\n", bhttp::error::bad_content_length},
        {"a signed Content-Length", ok + "Content-Length: +3\r\n\r\n", bhttp::error::bad_content_length},
        {"an empty Content-Length", ok + "Content-Length: \r\n\r\n", bhttp::error::bad_content_length},
        {"an overflowing Content-Length", ok + "Content-Length: 99999999999999999999\r\n\r\n", bhttp::error::bad_content_length},
        {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", bhttp::error::bad_version},
        {"HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n", bhttp::error::bad_version},
        {"lower-case http", "http/1.1 200 OK\r\n\r\n", bhttp::error::bad_version},
        {"a leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", bhttp::error::bad_version},
        {"a two-digit status", "HTTP/1.1 20 OK\r\n\r\n", bhttp::error::bad_status},
        {"a status with a letter", "HTTP/1.1 2x0 OK\r\n\r\n", bhttp::error::bad_status},
        {"no space after the status", "HTTP/1.1 200OK\r\n\r\n", bhttp::error::bad_status},
        {"a control character in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", bhttp::error::bad_reason},
        {"an oversize head", ok + "X-Big: " + std::string(9000, 'a') + "\r\n\r\n", bhttp::error::header_limit},
        {"an oversize head, not ended", ok + "X-Big: " + std::string(9000, 'a'), bhttp::error::header_limit},
        {"a chunk size overflow", ok + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n", bhttp::error::bad_chunk},
        {"a chunk size not hex", ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", bhttp::error::bad_chunk},
        {"an empty chunk size", ok + "Transfer-Encoding: chunked\r\n\r\n;x\r\n", bhttp::error::bad_chunk},
        {"junk after a chunk size", ok + "Transfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", bhttp::error::bad_chunk},
        {"a chunk without its CRLF", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", bhttp::error::bad_chunk},
        {"a chunk line that never ends", ok + "Transfer-Encoding: chunked\r\n\r\n5;" + std::string(4200, 'x'), bhttp::error::bad_chunk},
        {"a bare LF after a chunk size", ok + "Transfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", bhttp::error::bad_line_ending},
        {"a malformed trailer field", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", bhttp::error::bad_field},
        {"an oversize trailer", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(9000, 'a'), bhttp::error::header_limit},
    };
    for (const auto& c : cases) {
        for (std::size_t step : {std::size_t{1}, SIZE_MAX}) {
            INFO(c.what << ", step " << step);
            ResponseParser parser;
            CHECK(feed(parser, c.raw, step) == c.error);
            CHECK_FALSE(parser.is_done());
            CHECK_FALSE(parser.refusal().empty());
        }
    }
}

TEST_CASE("response parser: what it accepts, Beast's parser reads the same (fields in order, body)") {
    const std::string responses[] = {
        "HTTP/1.1 200 OK\r\nServer: cachalot-demo-origin\r\nContent-Type: application/json\r\n"
        "Cache-Control: public, max-age=60\r\nContent-Length: 13\r\n\r\n{\"a\": \"body\"}",
        "HTTP/1.1 301 Moved Permanently\r\nLocation: /b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nX-Custom-Field: caf\xc3\xa9\r\nETag: \"v1\"\r\n"
        "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n1;e=1\r\ne\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end",
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 4\r\n\r\nbusy",
    };
    for (const auto& raw : responses) {
        INFO(raw);
        ResponseParser ours;
        REQUIRE_FALSE(feed(ours, raw, SIZE_MAX, true));
        bhttp::response_parser<bhttp::string_body> beasts;
        beasts.eager(true);
        beast::error_code ec;
        beasts.put(net::buffer(raw), ec);
        if (!beasts.is_done()) beasts.put_eof(ec);
        REQUIRE_FALSE(ec);
        const auto& a = ours.get();
        const auto& b = beasts.get();
        CHECK(a.result_int() == b.result_int());
        CHECK(a.version() == b.version());
        CHECK(a.reason() == b.reason());
        CHECK(a.body() == b.body());
        CHECK(fields_of(a) == fields_of(b));
        CHECK(ours.keep_alive() == b.keep_alive());
        CHECK(ours.need_eof() == beasts.need_eof());
    }
}
