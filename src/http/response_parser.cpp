#include "http/response_parser.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include <array>
#include <cstring>

namespace cachalot::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;

constexpr std::size_t kChunkLineLimit = 4096;
constexpr std::size_t kBodyReserve = 64 * 1024;  // at most, for a body announced longer
constexpr auto npos = std::string_view::npos;

// tchar (RFC 9110 §5.6.2): what a field name is made of.
constexpr std::array<bool, 256> kToken = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}();
// field-vchar, SP and HTAB: what a field value (and a reason phrase) may hold.
constexpr std::array<bool, 256> kText = [] {
    std::array<bool, 256> t{};
    t['\t'] = true;
    for (int c = 0x20; c < 256; ++c) t[c] = c != 0x7f;
    return t;
}();

bool all_of(std::string_view s, const std::array<bool, 256>& set) {
    for (char c : s)
        if (!set[static_cast<unsigned char>(c)]) return false;
    return true;
}

// A field value's (or reason phrase's) bytes: all of kText. Eight at a time: a word with no byte
// below 0x20 and none equal to 0x7f is all text (bytes from 0x80 up are obs-text); a word with
// one is looked at byte by byte (HTAB is text). Values are most of a head's bytes.
bool all_text(std::string_view s) {
    constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t x;
        std::memcpy(&x, s.data() + i, 8);
        const std::uint64_t del = x ^ (0x7f * ones);
        if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs)
            if (!all_of(s.substr(i, 8), kText)) return false;
    }
    return all_of(s.substr(i), kText);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view lower) {
    if (a.size() != lower.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if ((a[i] | 0x20) != lower[i]) return false;
    return true;
}

// Calls f(element) for each non-empty element of a comma-separated list, trimmed.
template <class F>
void for_each_element(std::string_view list, F&& f) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        const auto element = trim(list.substr(0, comma));
        if (!element.empty()) f(element);
        if (comma == npos) break;
        list.remove_prefix(comma + 1);
    }
}

// Where the section of CRLF-ended lines starting at `from` ends (just past its empty line), from
// `scanned` on (where an earlier look stopped, at the start of a line). npos while it is not
// all there (`scanned` is then where to look next time); a bare LF sets `bare_lf`.
std::size_t section_end(std::string_view in, std::size_t from, std::size_t& scanned, bool& bare_lf) {
    std::size_t line = std::max(from, scanned);
    for (;;) {
        const void* nl = line < in.size() ? std::memchr(in.data() + line, '\n', in.size() - line) : nullptr;
        if (!nl) {
            scanned = line;
            return npos;
        }
        const auto at = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
        if (at == 0 || in[at - 1] != '\r') {
            bare_lf = true;
            return npos;
        }
        if (at == line + 1 && line > from) return at + 1;  // the empty line (not the first line)
        line = at + 1;
    }
}

}  // namespace

std::size_t ResponseParser::put(net::const_buffer input, beast::error_code& ec) {
    ec = {};
    if (input.size() > 0) got_some_ = true;
    const std::string_view in(static_cast<const char*>(input.data()), input.size());
    if (state_ == State::Head) return parse_head(in, ec);
    if (state_ == State::Done) return 0;
    return parse_body(in, ec);
}

void ResponseParser::put_eof(beast::error_code& ec) {
    ec = {};
    if (state_ == State::UntilEof) state_ = State::Done;
    else if (state_ != State::Done) ec = bhttp::error::partial_message;
}

std::size_t ResponseParser::parse_head(std::string_view in, beast::error_code& ec) {
    bool bare_lf = false;
    const auto end = section_end(in, 0, scanned_, bare_lf);
    if (bare_lf) return refuse(ec, bhttp::error::bad_line_ending, "a line ends in a bare LF"), 0;
    if (end == npos ? in.size() > kHeaderLimit : end > kHeaderLimit)
        return refuse(ec, bhttp::error::header_limit, "the head is larger than 8 KiB"), 0;
    if (end == npos) {
        ec = bhttp::error::need_more;
        return 0;
    }
    scanned_ = 0;

    // The status line. (Every line ends in CRLF, as section_end checked; a CR elsewhere is
    // refused with the other control characters.)
    auto nl = in.find('\n');
    const auto line = in.substr(0, nl - 1);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ')
        return refuse(ec, bhttp::error::bad_version, "not an HTTP/1.x status line"), 0;
    unsigned status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') return refuse(ec, bhttp::error::bad_status, "a malformed status code"), 0;
        status = status * 10 + static_cast<unsigned>(line[i] - '0');
    }
    std::string_view reason;
    if (line.size() > 12) {
        if (line[12] != ' ') return refuse(ec, bhttp::error::bad_status, "a malformed status code"), 0;
        reason = line.substr(13);
        if (!all_text(reason)) return refuse(ec, bhttp::error::bad_reason, "a control character in the reason"), 0;
    }
    const unsigned version = 10 + static_cast<unsigned>(line[7] - '0');
    response_.version(version);
    response_.result(status);
    // (The usual phrase is what the client gets without one: no copy of it is kept.)
    if (!reason.empty() && reason != bhttp::obsolete_reason(static_cast<bhttp::status>(status)))
        response_.reason(reason);

    // The fields, each checked and inserted once; the framing ones are read on the way.
    bool close = false, keep_alive = false, chunked = false, bad_length = false;
    std::size_t codings = 0;
    for (auto from = nl + 1; from < end - 2; from = nl + 1) {
        nl = in.find('\n', from);
        const auto field_line = in.substr(from, nl - 1 - from);
        if (field_line.front() == ' ' || field_line.front() == '\t')
            return refuse(ec, bhttp::error::bad_value, "a folded field line (obs-fold)"), 0;
        const auto colon = field_line.find(':');
        const auto name = field_line.substr(0, colon);
        if (colon == npos || name.empty() || !all_of(name, kToken))
            return refuse(ec, bhttp::error::bad_field, "a malformed field name"), 0;
        const auto value = trim(field_line.substr(colon + 1));
        if (!all_text(value)) return refuse(ec, bhttp::error::bad_value, "a control character in a field value"), 0;
        const auto f = bhttp::string_to_field(name);
        switch (f) {
        case bhttp::field::content_length:
            if (value.empty()) bad_length = true;
            for_each_element(value, [&](std::string_view v) {
                std::uint64_t n = 0;
                for (char c : v) {
                    if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) {
                        bad_length = true;
                        return;
                    }
                    n = n * 10 + static_cast<std::uint64_t>(c - '0');
                }
                if (content_length_ && *content_length_ != n) bad_length = true;
                content_length_ = n;
            });
            break;
        case bhttp::field::transfer_encoding:
            for_each_element(value, [&](std::string_view v) {
                ++codings;
                chunked = iequals(v, "chunked");
            });
            break;
        case bhttp::field::connection:
            for_each_element(value, [&](std::string_view v) {
                close = close || iequals(v, "close");
                keep_alive = keep_alive || iequals(v, "keep-alive");
            });
            break;
        default:
            break;
        }
        response_.insert(f, name, value);
    }
    if (bad_length) return refuse(ec, bhttp::error::bad_content_length, "invalid or conflicting Content-Length"), 0;
    if (codings > 0) {
        if (content_length_)
            return refuse(ec, bhttp::error::bad_transfer_encoding, "both Content-Length and Transfer-Encoding"), 0;
        // Another coding would have to be decoded here, and a repeated chunked is invalid (RFC 9112 §6.1).
        if (codings != 1 || !chunked)
            return refuse(ec, bhttp::error::bad_transfer_encoding,
                          "unsupported Transfer-Encoding (only chunked is accepted)"), 0;
    }
    keep_alive_ = version >= 11 ? !close : keep_alive && !close;

    if (head_request_ || status / 100 == 1 || status == 204 || status == 304) {
        state_ = State::Done;
    } else if (chunked) {
        state_ = State::ChunkSize;
    } else if (content_length_) {
        remaining_ = *content_length_;
        state_ = remaining_ == 0 ? State::Done : State::Length;
        response_.body().reserve(static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, kBodyReserve)));
    } else {
        state_ = State::UntilEof;
        until_eof_ = true;
        keep_alive_ = false;
    }
    return end;
}

std::size_t ResponseParser::parse_body(std::string_view in, beast::error_code& ec) {
    auto& body = response_.body();
    std::size_t used = 0;
    while (state_ != State::Done) {
        const auto rest = in.substr(used);
        if (state_ == State::UntilEof) {
            body.append(rest);
            used += rest.size();
            break;
        }
        if (state_ == State::Length || state_ == State::ChunkData) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, rest.size()));
            if (n == 0) break;
            body.append(rest.data(), n);
            used += n;
            remaining_ -= n;
            if (remaining_ == 0) state_ = state_ == State::Length ? State::Done : State::ChunkEnd;
        } else if (state_ == State::ChunkEnd) {
            if (rest.size() < 2) break;
            if (rest[0] != '\r' || rest[1] != '\n')
                return refuse(ec, bhttp::error::bad_chunk, "a chunk not followed by CRLF"), used;
            used += 2;
            state_ = State::ChunkSize;
        } else if (state_ == State::ChunkSize) {
            // chunk-size [ chunk-ext ] CRLF; the extensions are ignored (RFC 9112 §7.1.1).
            const auto nl = rest.substr(0, kChunkLineLimit).find('\n');
            if (nl == npos) {
                if (rest.size() >= kChunkLineLimit)
                    return refuse(ec, bhttp::error::bad_chunk, "a chunk line longer than 4 KiB"), used;
                break;
            }
            if (nl == 0 || rest[nl - 1] != '\r') return refuse(ec, bhttp::error::bad_line_ending, "a line ends in a bare LF"), used;
            const auto line = rest.substr(0, nl - 1);
            std::uint64_t size = 0;
            std::size_t digits = 0;
            for (; digits < line.size(); ++digits) {
                const char c = line[digits];
                const int v = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
                if (v < 0) break;
                if (digits == 15) return refuse(ec, bhttp::error::bad_chunk, "a chunk size too large"), used;
                size = size * 16 + static_cast<std::uint64_t>(v);
            }
            const auto ext = trim(line.substr(digits));
            if (digits == 0 || (!ext.empty() && (ext.front() != ';' || !all_of(ext, kText))))
                return refuse(ec, bhttp::error::bad_chunk, "a malformed chunk size"), used;
            used += nl + 1;
            if (size == 0) {
                state_ = State::Trailer;
                scanned_ = 0;
            } else {
                remaining_ = size;
                state_ = State::ChunkData;
            }
        } else {  // Trailer: fields until an empty line, read whole and dropped
            bool bare_lf = false;
            // (An empty trailer section is the empty line alone.)
            std::size_t end = rest.substr(0, 2) == "\r\n" ? 2 : npos;
            if (end == npos && rest.size() >= 2) {
                std::size_t scanned = scanned_;
                end = section_end(rest, 0, scanned, bare_lf);
                scanned_ = scanned;
            }
            if (bare_lf) return refuse(ec, bhttp::error::bad_line_ending, "a line ends in a bare LF"), used;
            if (end == npos ? rest.size() > kHeaderLimit : end > kHeaderLimit)
                return refuse(ec, bhttp::error::header_limit, "the trailer section is larger than 8 KiB"), used;
            if (end == npos) break;
            for (std::size_t from = 0; from < end - 2;) {
                const auto nl = rest.find('\n', from);
                const auto field_line = rest.substr(from, nl - 1 - from);
                const auto colon = field_line.find(':');
                if (colon == npos || colon == 0 || !all_of(field_line.substr(0, colon), kToken) ||
                    !all_of(field_line.substr(colon + 1), kText))
                    return refuse(ec, bhttp::error::bad_field, "a malformed trailer field"), used;
                from = nl + 1;
            }
            used += end;
            state_ = State::Done;
        }
    }
    if (used == 0 && state_ != State::Done) ec = bhttp::error::need_more;
    return used;
}

}  // namespace cachalot::http
