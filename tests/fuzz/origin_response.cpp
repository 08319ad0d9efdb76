// An origin's response as the pool reads it (http::ResponseParser), fed whole and then in pieces
// of the size the input's first byte gives, each feed ended by the connection's close. Beyond
// "no crash": both feeds reach the same verdict, head and body (where a response is cut does not
// change what it means); what is accepted holds no byte that could break the head Cachalot
// writes (CR, LF or NUL in a value, a name that is not a token); a Content-Length body that
// completed has that length.
#include "http/response_parser.hpp"

#include <cstdlib>
#include <string>
#include <string_view>

using namespace cachalot;
namespace net = boost::asio;
namespace beast = boost::beast;

namespace {

struct Outcome {
    beast::error_code ec;
    bool done = false;
    std::string head;  // status and fields, as read
    std::string body;
};

Outcome run(std::string_view raw, std::size_t step) {
    http::ResponseParser parser;
    std::string buffer;
    std::size_t given = 0;
    Outcome out;
    for (;;) {
        bool failed = false;
        while (!parser.is_done()) {
            beast::error_code ec;
            const auto used = parser.put(net::buffer(buffer), ec);
            buffer.erase(0, used);
            if (ec == bhttp::error::need_more) break;
            if (ec) {
                out.ec = ec;
                failed = true;
                break;
            }
            if (used == 0) break;
        }
        if (failed || parser.is_done()) break;
        if (given == raw.size()) {
            parser.put_eof(out.ec);
            break;
        }
        const auto n = std::min(step, raw.size() - given);
        buffer.append(raw.substr(given, n));
        given += n;
    }
    out.done = parser.is_done();
    if (parser.is_header_done() && !out.ec) {
        const auto& res = parser.get();
        out.head = std::to_string(res.result_int()) + " " + std::string(res.reason()) + "\n";
        for (const auto& f : res) {
            const auto name = f.name_string();
            const auto value = f.value();
            if (name.empty()) std::abort();
            for (char c : name)
                if (c <= 0x20 || c == ':' || c >= 0x7f) std::abort();
            for (char c : value)
                if (c == '\r' || c == '\n' || c == '\0') std::abort();
            out.head.append(name).append(": ").append(value).append("\n");
        }
        out.body = res.body();
        if (out.done && parser.content_length() && !parser.need_eof() && res.result_int() >= 200 &&
            res.result_int() != 204 && res.result_int() != 304 && res.body().size() != *parser.content_length())
            std::abort();
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t step = data[0] == 0 ? 1 : data[0];
    const std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto whole = run(raw, SIZE_MAX);
    const auto pieces = run(raw, step);
    if (whole.ec != pieces.ec || whole.done != pieces.done || whole.head != pieces.head || whole.body != pieces.body)
        std::abort();
    return 0;
}
