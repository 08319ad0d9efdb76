#include "core/wire.hpp"

#include "core/tls_stream.hpp"
#include "http/parser.hpp"
#include "http/response_parser.hpp"

#include <array>

namespace cachalot::core {
namespace {

void append_fields(const bhttp::fields& fields, std::string& out) {
    for (const auto& f : fields) append_field_line(out, f.name_string(), f.value());
    out.append("\r\n");
}

// How much to read: a body in 64 KiB reads (a buffer's own growth would start at 512 bytes and
// make a large body thousands of reads); a head with what the buffer has room for.
std::size_t read_size(const beast::flat_buffer& buffer, bool body) {
    constexpr std::size_t kBodyRead = 65536;
    if (body) return std::min(kBodyRead, buffer.max_size() - buffer.size());
    return beast::read_size(buffer, kBodyRead);
}

void append_version(unsigned version, std::string& out) {
    const char v[] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + version / 10), '.',
                      static_cast<char>('0' + version % 10)};
    out.append(v, sizeof v);
}

}  // namespace

void serialize_head(const bhttp::response_header<>& head, std::string& out) {
    append_version(head.version(), out);
    const unsigned status = head.result_int();
    const char code[] = {' ', static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                         static_cast<char>('0' + status % 10), ' '};
    out.append(code, sizeof code);
    out.append(head.reason());  // the obsolete reason phrase of the status when none is set
    out.append("\r\n");
    append_fields(head, out);
}

std::size_t write_now(tcp::socket& socket, const std::string& head, std::string_view body, beast::error_code& ec) {
    const std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body.data(), body.size())};
    const std::size_t sent = socket.write_some(buffers, ec);
    if (ec == net::error::would_block) ec = {};
    return sent;
}

template <class Stream>
net::awaitable<beast::error_code> write_rest(Stream& socket, const std::string& head, std::string_view body,
                                             std::size_t sent) {
    std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body.data(), body.size())};
    auto rest = beast::buffers_suffix<std::array<net::const_buffer, 2>>(buffers);
    rest.consume(sent);
    auto [ec, n] = co_await net::async_write(socket, rest, net::as_tuple(net::use_awaitable));
    co_return ec;
}

template <class Stream>
net::awaitable<beast::error_code> write_message(Stream& stream, const std::string& head, std::string_view body) {
    std::size_t sent = 0;
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
        beast::error_code ec;
        sent = write_now(stream, head, body, ec);
        if (ec || sent == head.size() + body.size()) co_return ec;
    }
    co_return co_await write_rest(stream, head, body, sent);
}

template <class Parser>
bool parse_buffered(beast::flat_buffer& buffer, Parser& parser, Until until, beast::error_code& ec) {
    ec = {};
    if (buffer.size() == 0) return false;
    const auto used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) {
        ec = {};
        return false;
    }
    return ec || (until == Until::Head ? parser.is_header_done() : used > 0 || parser.is_done());
}

template <class Stream, class Parser>
net::awaitable<beast::error_code> read(Stream& socket, beast::flat_buffer& buffer, Parser& parser, Until until) {
    for (;;) {
        beast::error_code ec;
        if (parse_buffered(buffer, parser, until, ec)) co_return ec;
        const auto size = read_size(buffer, until == Until::More);
        if (size == 0) co_return bhttp::error::buffer_overflow;
        auto [rec, n] = co_await socket.async_read_some(buffer.prepare(size), net::as_tuple(net::use_awaitable));
        buffer.commit(n);
        if (rec == net::error::eof) {
            if (!parser.got_some()) co_return bhttp::error::end_of_stream;
            beast::error_code eof;
            parser.put_eof(eof);  // complete for a body that ends with the connection, else partial_message
            co_return eof;
        }
        if (rec) co_return rec;
    }
}

template <class Stream, class Parser>
beast::error_code read_available(Stream& socket, beast::flat_buffer& buffer, Parser& parser, std::size_t limit) {
    for (;;) {
        while (buffer.size() > 0 && !parser.is_done()) {
            beast::error_code ec;
            const auto used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            if (ec == bhttp::error::need_more) break;
            if (ec) return ec;
            if (used == 0) break;
        }
        if (parser.is_done() || parser.get().body().size() >= limit) return {};
        const auto size = read_size(buffer, true);
        if (size == 0) return bhttp::error::buffer_overflow;
        beast::error_code ec;
        const auto n = socket.read_some(buffer.prepare(size), ec);
        buffer.commit(n);
        if (ec == net::error::would_block) return {};
        if (ec == net::error::eof) {
            beast::error_code eof;
            parser.put_eof(eof);
            return eof;
        }
        if (ec) return ec;
    }
}

template net::awaitable<beast::error_code> read(tcp::socket&, beast::flat_buffer&, http::RequestParser&, Until);
template net::awaitable<beast::error_code> read(tcp::socket&, beast::flat_buffer&, http::ResponseParser&, Until);
template net::awaitable<beast::error_code> read(TlsStream&, beast::flat_buffer&, http::ResponseParser&, Until);
template bool parse_buffered(beast::flat_buffer&, http::RequestParser&, Until, beast::error_code&);
template beast::error_code read_available(tcp::socket&, beast::flat_buffer&, http::RequestParser&, std::size_t);
template beast::error_code read_available(tcp::socket&, beast::flat_buffer&, http::ResponseParser&, std::size_t);
template beast::error_code read_available(TlsStream&, beast::flat_buffer&, http::ResponseParser&, std::size_t);
template net::awaitable<beast::error_code> write_rest(tcp::socket&, const std::string&, std::string_view, std::size_t);
template net::awaitable<beast::error_code> write_rest(TlsStream&, const std::string&, std::string_view, std::size_t);
template net::awaitable<beast::error_code> write_message(tcp::socket&, const std::string&, std::string_view);
template net::awaitable<beast::error_code> write_message(TlsStream&, const std::string&, std::string_view);

}  // namespace cachalot::core
