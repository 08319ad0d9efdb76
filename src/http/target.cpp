#include "cachalot/http/target.hpp"

#include <algorithm>

namespace cachalot::http {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) { return a == lower(b); });
}

// An IPv6 literal's inside: hex digits, ':' and (for an embedded IPv4) '.'. The exact grammar
// is left to the origin's resolver; what matters here is that no delimiter can hide in it.
bool valid_ipv6(std::string_view s) {
    return s.size() >= 2 && s.size() <= 45 && s.find(':') != std::string_view::npos &&
           std::all_of(s.begin(), s.end(), [](char c) { return is_hex(c) || c == ':' || c == '.'; });
}

// Dot-separated labels of letters, digits, '-' and '_', none empty (one trailing dot, the
// root, is allowed and dropped): so that normalizing a name twice changes nothing.
bool valid_reg_name(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_'; });
}

}  // namespace

std::optional<Authority> parse_authority(std::string_view text, std::string_view scheme) {
    Authority out;
    std::string_view host, port;
    bool has_port = false;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || !valid_ipv6(text.substr(1, close - 1))) return std::nullopt;
        host = text.substr(0, close + 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            has_port = true;
            port = rest.substr(1);
        }
    } else {
        auto colon = text.find(':');
        host = text.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port = text.substr(colon + 1);
        }
        if (!valid_reg_name(host)) return std::nullopt;
    }
    if (has_port) {
        // An empty port is allowed by RFC 3986 and means the default.
        if (port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) return std::nullopt;
        unsigned value = 0;
        for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
        if (!port.empty() && (value == 0 || value > 65535)) return std::nullopt;
        const unsigned default_port = scheme == "https" ? 443 : 80;
        if (!port.empty() && value != default_port) out.port = std::to_string(value);
    }
    out.host.resize(host.size());
    std::transform(host.begin(), host.end(), out.host.begin(), lower);
    if (out.host.back() == '.') out.host.pop_back();
    return out;
}

std::optional<RequestTarget> parse_request_target(std::string_view target) {
    if (target.empty()) return std::nullopt;
    // Visible ASCII only (RFC 9112 §3.2: a target is a URI). Beast lets bytes >= 0x80 through.
    if (!std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) return std::nullopt;
    RequestTarget out;
    if (target.front() == '/') {
        out.origin_form = std::string(target);
        return out;
    }
    if (target == "*") {
        out.form = RequestTarget::Form::Asterisk;
        out.origin_form = "*";
        return out;
    }
    std::string_view scheme;
    if (istarts_with(target, "http://")) scheme = "http";
    else if (istarts_with(target, "https://")) scheme = "https";
    else return std::nullopt;
    auto rest = target.substr(scheme.size() + 3);
    if (rest.find('#') != std::string_view::npos) return std::nullopt;
    const auto end = std::min(rest.find_first_of("/?"), rest.size());
    out.authority = parse_authority(rest.substr(0, end), scheme);
    if (!out.authority) return std::nullopt;
    out.form = RequestTarget::Form::Absolute;
    rest.remove_prefix(end);
    out.origin_form = rest.empty() || rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
    return out;
}

std::string_view path_of(std::string_view origin_form) { return origin_form.substr(0, origin_form.find('?')); }

}  // namespace cachalot::http
