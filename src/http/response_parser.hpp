#pragma once
// The parser of origin responses: the head in one pass over the buffer, the body framed as the
// head says, each response field inserted once into the message that goes on through the
// pipeline. It stands in for Beast's response parser (the names of the members the origin
// client and core/wire.hpp use are Beast's), which spent about 3 000 instructions per response
// on a 4-field head before any field was stored: byte-by-byte state, a callback per field, a
// second look at each framing field, an allocation for the reason phrase and one for the body.
//
// What it accepts (RFC 9112), and refuses with Beast's error codes:
//   status line  "HTTP/1.x SP 3DIGIT [SP reason] CRLF" (bad_version, bad_status, bad_reason)
//   fields       token ":" OWS value OWS CRLF; a value of SP, HTAB, VCHAR and obs-text (bad_field,
//                bad_value). A folded line (obs-fold) is refused: RFC 9112 §5.2 lets a proxy
//                answer 502 rather than unfold a response.
//   lines        end in CRLF; a bare LF is refused (bad_line_ending)
//   framing      Content-Length: digits, repeated or listed only with one value (bad_content_length);
//                Transfer-Encoding: exactly "chunked", never with Content-Length
//                (bad_transfer_encoding): another coding would reach the client still applied
//   size         the head at most 8 KiB (header_limit), a chunk line at most 4 KiB (bad_chunk)
// A chunked body's trailer fields are read and dropped: none joins the header section.
// No body: HEAD (skip), 1xx, 204, 304. Neither framing field: the body ends with the connection.

#include "cachalot/core/bhttp.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string_view>

namespace cachalot::http {

class ResponseParser {
public:
    using Response = bhttp::response<bhttp::string_body>;
    static constexpr std::size_t kHeaderLimit = 8 * 1024;

    /// The response to a HEAD request has no body, whatever its head says.
    void skip(bool head_request) { head_request_ = head_request; }

    /// Parses what `input` holds: the whole head once it is all there (0 bytes used and
    /// need_more until then), else as much of the body as it holds, never past the message's
    /// end. Returns the bytes used.
    std::size_t put(boost::asio::const_buffer input, boost::system::error_code& ec);
    /// The connection closed: completes a body that ends with it, else partial_message.
    void put_eof(boost::system::error_code& ec);

    bool got_some() const { return got_some_; }
    bool is_header_done() const { return state_ != State::Head; }
    bool is_done() const { return state_ == State::Done; }
    /// The body ends with the connection's close.
    bool need_eof() const { return until_eof_; }
    /// Whether the connection may carry another exchange after this response (as its version
    /// and Connection field say).
    bool keep_alive() const { return keep_alive_; }
    std::optional<std::uint64_t> content_length() const { return content_length_; }

    /// The response: its head once is_header_done(), its body as far as it was parsed.
    Response& get() { return response_; }
    Response release() { return std::move(response_); }
    /// Why the response was refused, for the log (empty while nothing was refused).
    std::string_view refusal() const { return refusal_; }

private:
    enum class State : std::uint8_t { Head, Length, UntilEof, ChunkSize, ChunkData, ChunkEnd, Trailer, Done };
    std::size_t parse_head(std::string_view in, boost::system::error_code& ec);
    std::size_t parse_body(std::string_view in, boost::system::error_code& ec);
    bool refuse(boost::system::error_code& ec, bhttp::error e, const char* why) {
        ec = e;
        refusal_ = why;
        return false;
    }

    Response response_;
    State state_ = State::Head;
    bool head_request_ = false;
    bool got_some_ = false;
    bool until_eof_ = false;
    bool keep_alive_ = false;
    std::optional<std::uint64_t> content_length_;
    std::uint64_t remaining_ = 0;  // of the body (Length) or of the chunk (ChunkData)
    std::size_t scanned_ = 0;      // of a head or a trailer section not yet complete: where to look on
    std::string_view refusal_;
};

}  // namespace cachalot::http
