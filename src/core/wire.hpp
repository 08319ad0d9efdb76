#pragma once
// Messages onto the wire without Beast's serializer: the head serialized into a string the
// caller keeps (its capacity is reused from message to message), the body as it is, written as
// one gather write that is tried at once on the non-blocking socket and finished through the
// reactor. Beast's composed write costs a trip through the scheduler and several layers of
// buffer adaptors per message; on a hit that was a visible part of the CPU (README, Benchmarks).
// Chunked messages are not written here: the callers frame every message by its length.

#include "core/net.hpp"

#include <string>
#include <string_view>

namespace cachalot::core {

/// Appends the head as it goes on the wire (start line, fields, empty line) to `out`, byte for
/// byte what Beast's serializer writes for it.
void serialize_head(const bhttp::response_header<>& head, std::string& out);
void serialize_head(const bhttp::request_header<>& head, std::string& out);

/// Writes `head` then `body` on `stream` (a tcp::socket or a beast::tcp_stream, whose socket is
/// non-blocking): what the socket takes at once, the rest asynchronously (under the stream's
/// own timeout, for a tcp_stream).
template <class Stream>
net::awaitable<beast::error_code> write_message(Stream& stream, const std::string& head, std::string_view body);

}  // namespace cachalot::core
