#include "core/wire.hpp"

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

tcp::socket& socket_of(tcp::socket& s) { return s; }
tcp::socket& socket_of(beast::tcp_stream& s) { return s.socket(); }

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

template <class Stream>
net::awaitable<beast::error_code> write_message(Stream& stream, const std::string& head, std::string_view body) {
    std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body.data(), body.size())};
    beast::error_code ec;
    const std::size_t sent = socket_of(stream).write_some(buffers, ec);
    if (ec && ec != net::error::would_block) co_return ec;
    if (sent == head.size() + body.size()) co_return beast::error_code{};
    auto rest = beast::buffers_suffix<std::array<net::const_buffer, 2>>(buffers);
    rest.consume(sent);
    auto [wec, n] = co_await net::async_write(stream, rest, net::as_tuple(net::use_awaitable));
    co_return wec;
}

template net::awaitable<beast::error_code> write_message(tcp::socket&, const std::string&, std::string_view);
template net::awaitable<beast::error_code> write_message(beast::tcp_stream&, const std::string&, std::string_view);

}  // namespace cachalot::core
