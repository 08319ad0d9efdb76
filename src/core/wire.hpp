#pragma once
// Messages from and onto the wire without Beast's composed operations. Reading: a parser is fed
// what the buffer holds and the socket is read only when that is not enough (Beast's composed
// read posts its completion through the scheduler whenever the buffer already held enough:
// every keep-alive request). Writing, without Beast's serializer: the head serialized into a string the
// caller keeps (its capacity is reused from message to message), the body as it is, written as
// one gather write that is tried at once on the non-blocking socket and finished through the
// reactor. Beast's composed write costs a trip through the scheduler and several layers of
// buffer adaptors per message; on a hit that was a visible part of the CPU (README, Benchmarks).

#include "core/net.hpp"

#include <cstring>
#include <string>
#include <string_view>

namespace cachalot::core {

/// Appends one field line, "name: value" CRLF, to `out`: one resize and two copies (four
/// appends were a tenth of serializing a head).
inline void append_field_line(std::string& out, std::string_view name, std::string_view value) {
    const auto at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    if (!name.empty()) std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty()) std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

/// Appends the head as it goes on the wire (start line, fields, empty line) to `out`, byte for
/// byte what Beast's serializer writes for it.
void serialize_head(const bhttp::response_header<>& head, std::string& out);

/// Writes `head` then `body` on `socket` (non-blocking): what it takes at once, the rest
/// asynchronously (a core::Deadline on the socket bounds the wait). On a TLS stream (core::TlsStream,
/// whose writes cannot be tried without waiting), all of it asynchronously.
template <class Stream>
net::awaitable<beast::error_code> write_message(Stream& stream, const std::string& head, std::string_view body);

/// The two halves of write_message, for the hot paths (most messages go at once, and then no
/// coroutine frame is made): write_now() writes what the socket takes at once and returns how
/// much that was (an error other than would_block in `ec`); write_rest() waits to write the rest.
std::size_t write_now(tcp::socket& socket, const std::string& head, std::string_view body, beast::error_code& ec);
template <class Stream>
net::awaitable<beast::error_code> write_rest(Stream& stream, const std::string& head, std::string_view body,
                                             std::size_t sent);

/// Reads into `parser` (a Beast request or response parser) until its head is complete
/// (`Until::Head`) or until it made progress on its body (`Until::More`): from `buffer` first,
/// from `socket` when that is not enough. The results Beast's async_read_header and
/// async_read_some give: end_of_stream for a socket that closed before a byte, partial_message
/// for one that closed mid-message, the parser's own errors, the socket's.
/// (`Stream`: a tcp::socket or a core::TlsStream.)
enum class Until { Head, More };
template <class Stream, class Parser>
net::awaitable<beast::error_code> read(Stream& stream, beast::flat_buffer& buffer, Parser& parser, Until until);

/// The part of read() that needs no socket: feeds `parser` what `buffer` holds. True when that
/// was enough (as `until` says) or failed (`ec`); false when read() has to wait for more. (A
/// keep-alive request is usually all in the buffer already: no coroutine frame for it.)
template <class Parser>
bool parse_buffered(beast::flat_buffer& buffer, Parser& parser, Until until, beast::error_code& ec);

/// Feeds `parser` what `buffer` holds and what `socket` (non-blocking) has ready, never waiting:
/// until the message is complete, its body holds `limit` bytes, or the socket has nothing more
/// for now. Errors as read() gives them. (On a core::TlsStream too: a read that would block
/// leaves a partial TLS record in the stream for the next read.)
template <class Stream, class Parser>
beast::error_code read_available(Stream& stream, beast::flat_buffer& buffer, Parser& parser, std::size_t limit);

}  // namespace cachalot::core
