#include "core/wire.hpp"

#include "http/parser.hpp"

#include <array>

namespace cachalot::core {
namespace {

void append_fields(const bhttp::fields& fields, std::string& out) {
    for (const auto& f : fields) {
        out.append(f.name_string());
        out.append(": ");
        out.append(f.value());
        out.append("\r\n");
    }
    out.append("\r\n");
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

void serialize_head(const bhttp::request_header<>& head, std::string& out) {
    out.append(head.method_string());
    out.append(" ");
    out.append(head.target());
    out.append(" ");
    append_version(head.version(), out);
    out.append("\r\n");
    append_fields(head, out);
}

net::awaitable<beast::error_code> write_message(tcp::socket& socket, const std::string& head, std::string_view body) {
    std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body.data(), body.size())};
    beast::error_code ec;
    const std::size_t sent = socket.write_some(buffers, ec);
    if (ec && ec != net::error::would_block) co_return ec;
    if (sent == head.size() + body.size()) co_return beast::error_code{};
    auto rest = beast::buffers_suffix<std::array<net::const_buffer, 2>>(buffers);
    rest.consume(sent);
    auto [wec, n] = co_await net::async_write(socket, rest, net::as_tuple(net::use_awaitable));
    co_return wec;
}

template <class Parser>
net::awaitable<beast::error_code> read(tcp::socket& socket, beast::flat_buffer& buffer, Parser& parser, Until until) {
    for (;;) {
        if (buffer.size() > 0) {
            beast::error_code ec;
            const auto used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            if (ec != bhttp::error::need_more) {
                if (ec) co_return ec;
                if (until == Until::Head ? parser.is_header_done() : used > 0 || parser.is_done()) co_return ec;
            }
        }
        const auto size = beast::read_size(buffer, 65536);
        if (size == 0) co_return bhttp::error::buffer_overflow;
        auto [ec, n] = co_await socket.async_read_some(buffer.prepare(size), net::as_tuple(net::use_awaitable));
        buffer.commit(n);
        if (ec == net::error::eof) {
            if (!parser.got_some()) co_return bhttp::error::end_of_stream;
            beast::error_code eof;
            parser.put_eof(eof);  // complete for a body that ends with the connection, else partial_message
            co_return eof;
        }
        if (ec) co_return ec;
    }
}

template net::awaitable<beast::error_code> read(tcp::socket&, beast::flat_buffer&, http::RequestParser&, Until);
template net::awaitable<beast::error_code> read(tcp::socket&, beast::flat_buffer&, http::ResponseParser&, Until);

}  // namespace cachalot::core
