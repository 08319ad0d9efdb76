#include "cachalot/cache/outcome.hpp"

namespace cachalot::cache {

std::string cache_status_entry(const Outcome& o, std::string_view name) {
    std::string s(name);
    if (o.result == Result::Hit) {
        s += "; hit";
    } else {
        s += "; fwd=";
        s += to_string(o.fwd);
        if (o.fwd_status) s += "; fwd-status=" + std::to_string(o.fwd_status);
    }
    if (o.stored) s += "; stored";
    if (o.collapsed) s += "; collapsed";
    if (o.ttl) s += "; ttl=" + std::to_string(*o.ttl);
    if (o.detail != Detail::None) {
        s += "; detail=";
        s += to_string(o.detail);
    }
    if (!o.key.empty()) {
        // A quoted string (RFC 8941 §3.3.3): quotes and backslashes escaped; the bytes a key
        // uses as separators shown as spaces.
        s += "; key=\"";
        for (char c : o.key) {
            if (c == '"' || c == '\\') s += '\\';
            s += (c == '\n' || c == '\x1f') ? ' ' : c;
        }
        s += '"';
    }
    return s;
}

}  // namespace cachalot::cache
