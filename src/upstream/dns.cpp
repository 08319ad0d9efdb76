#include "upstream/dns.hpp"

#include <arpa/inet.h>

#include <cctype>

namespace cachalot::upstream::dns {
namespace {

constexpr std::uint16_t kClassIn = 1;
constexpr std::size_t kHeader = 12;

void put16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xff));
}

std::string_view without_dot(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    return name;
}

class Reader {
public:
    explicit Reader(std::string_view bytes) : b_(bytes) {}
    bool u16(std::size_t& pos, std::uint16_t& v) const {
        if (pos + 2 > b_.size()) return false;
        v = static_cast<std::uint16_t>(byte(pos) << 8 | byte(pos + 1));
        pos += 2;
        return true;
    }
    bool u32(std::size_t& pos, std::uint32_t& v) const {
        std::uint16_t hi = 0, lo = 0;
        if (!u16(pos, hi) || !u16(pos, lo)) return false;
        v = std::uint32_t{hi} << 16 | lo;
        return true;
    }
    // Reads the name at `pos` as dotted lower-case text into `out` (when given) and moves `pos`
    // past it. Pointers must go backwards, to before the label that holds them.
    bool name(std::size_t& pos, std::string* out) const {
        std::size_t at = pos;
        bool jumped = false;
        std::size_t length = 0;
        for (;;) {
            if (at >= b_.size()) return false;
            const unsigned len = byte(at);
            if ((len & 0xc0) == 0xc0) {
                if (at + 1 >= b_.size()) return false;
                const std::size_t target = (len & 0x3f) << 8 | byte(at + 1);
                if (target >= at) return false;  // forwards or onto itself: no loops
                if (!jumped) pos = at + 2;
                jumped = true;
                at = target;
                continue;
            }
            if (len & 0xc0) return false;  // the obsolete label types
            if (len == 0) {
                if (!jumped) pos = at + 1;
                return true;
            }
            if (at + 1 + len > b_.size() || (length += len + 1) > 255) return false;
            if (out) {
                if (!out->empty()) out->push_back('.');
                for (std::size_t i = 0; i < len; ++i)
                    out->push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(b_[at + 1 + i]))));
            }
            at += 1 + len;
        }
    }
    std::string_view slice(std::size_t pos, std::size_t n) const { return b_.substr(pos, n); }
    std::size_t size() const { return b_.size(); }

private:
    unsigned byte(std::size_t i) const { return static_cast<unsigned char>(b_[i]); }
    std::string_view b_;
};

bool same_name(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

}  // namespace

std::string query(std::uint16_t id, std::string_view name, Type type) {
    name = without_dot(name);
    if (name.empty() || name.size() > 253) return {};
    std::string out;
    put16(out, id);
    put16(out, 0x0100);  // a standard query, recursion desired
    put16(out, 1);       // one question
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    for (std::size_t from = 0; from <= name.size();) {
        auto dot = name.find('.', from);
        if (dot == std::string_view::npos) dot = name.size();
        const auto label = name.substr(from, dot - from);
        if (label.empty() || label.size() > 63) return {};
        out.push_back(static_cast<char>(label.size()));
        out.append(label);
        from = dot + 1;
    }
    out.push_back('\0');
    put16(out, static_cast<std::uint16_t>(type));
    put16(out, kClassIn);
    return out;
}

std::optional<Answer> parse(std::string_view bytes, std::uint16_t id, std::string_view name, Type type) {
    const Reader r(bytes);
    std::size_t pos = 0;
    std::uint16_t got_id = 0, flags = 0, questions = 0, answers = 0, skip = 0;
    if (!r.u16(pos, got_id) || !r.u16(pos, flags) || !r.u16(pos, questions) || !r.u16(pos, answers) ||
        !r.u16(pos, skip) || !r.u16(pos, skip))
        return std::nullopt;
    // Ours, a response, a standard query's, one question.
    if (got_id != id || !(flags & 0x8000) || (flags >> 11 & 0xf) != 0 || questions != 1) return std::nullopt;
    std::string asked;
    std::uint16_t qtype = 0, qclass = 0;
    if (!r.name(pos, &asked) || !r.u16(pos, qtype) || !r.u16(pos, qclass)) return std::nullopt;
    if (!same_name(asked, without_dot(name)) || qtype != static_cast<std::uint16_t>(type) || qclass != kClassIn)
        return std::nullopt;
    Answer answer;
    answer.rcode = flags & 0xf;
    const std::size_t size = type == Type::A ? 4 : 16;
    for (std::uint16_t i = 0; i < answers; ++i) {
        std::uint16_t rtype = 0, rclass = 0, length = 0;
        std::uint32_t ttl = 0;
        if (!r.name(pos, nullptr) || !r.u16(pos, rtype) || !r.u16(pos, rclass) || !r.u32(pos, ttl) ||
            !r.u16(pos, length) || pos + length > r.size())
            return std::nullopt;
        // (CNAMEs on the way come first; the addresses are those of the name they lead to.)
        if (rtype == static_cast<std::uint16_t>(type) && rclass == kClassIn) {
            if (length != size) return std::nullopt;
            char text[INET6_ADDRSTRLEN] = {};
            if (!inet_ntop(type == Type::A ? AF_INET : AF_INET6, r.slice(pos, size).data(), text, sizeof text))
                return std::nullopt;
            answer.addresses.emplace_back(text);
            answer.ttl = answer.addresses.size() == 1 ? ttl : std::min(answer.ttl, ttl);
        }
        pos += length;
    }
    return answer;
}

}  // namespace cachalot::upstream::dns
