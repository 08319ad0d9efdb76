#include "cachalot/cache/key.hpp"

#include <algorithm>
#include <set>

namespace cachalot::cache {
namespace {

using http::to_lower;
using http::trim;

template <class F>
void split(std::string_view s, char sep, F&& f) {
    while (true) {
        auto at = s.find(sep);
        f(s.substr(0, at));
        if (at == std::string_view::npos) return;
        s.remove_prefix(at + 1);
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool unreserved(unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 3986 §6.2.2.1-2: percent-encodings in upper case, unreserved characters decoded.
std::string normalize_percent(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
            hex_value(s[i + 2]) >= 0) {
            auto c = static_cast<unsigned char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            if (unreserved(c)) {
                out += static_cast<char>(c);
            } else {
                out += '%';
                out += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i + 1])));
                out += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i + 2])));
            }
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

bool ignored(std::string_view param, const std::vector<std::string>& rules) {
    for (const auto& rule : rules) {
        if (!rule.empty() && rule.back() == '*') {
            if (param.substr(0, rule.size() - 1) == std::string_view(rule).substr(0, rule.size() - 1)) return true;
        } else if (param == rule) {
            return true;
        }
    }
    return false;
}

// A list-valued field with its elements trimmed, whitespace runs collapsed, and sorted.
std::string normalized_list(std::string_view value) {
    std::vector<std::string> elements;
    split(value, ',', [&](std::string_view e) {
        std::string collapsed;
        for (char c : trim(e)) {
            if ((c == ' ' || c == '\t') && !collapsed.empty() && collapsed.back() == ' ') continue;
            collapsed += (c == '\t') ? ' ' : c;
        }
        if (!collapsed.empty()) elements.push_back(std::move(collapsed));
    });
    std::sort(elements.begin(), elements.end());
    std::string out;
    for (auto& e : elements) {
        if (!out.empty()) out += ',';
        out += e;
    }
    return out;
}

}  // namespace

std::string normalized_accept_encoding(std::string_view value) {
    static const std::set<std::string> kServable{"br", "gzip", "zstd"};
    std::set<std::string> accepted;
    bool star = false;
    std::set<std::string> refused;
    split(value, ',', [&](std::string_view element) {
        auto semi = element.find(';');
        auto coding = to_lower(trim(element.substr(0, semi)));
        bool zero = false;
        if (semi != std::string_view::npos) {
            auto params = element.substr(semi + 1);
            split(params, ';', [&](std::string_view p) {
                p = trim(p);
                if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    auto q = trim(p.substr(2));
                    zero = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
                }
            });
        }
        if (coding == "x-gzip") coding = "gzip";
        if (coding == "*") star = !zero;
        else if (zero) refused.insert(coding);
        else if (kServable.count(coding)) accepted.insert(coding);
    });
    if (star)
        for (const auto& c : kServable)
            if (!refused.count(c)) accepted.insert(c);
    std::string out;
    for (const auto& c : accepted) {
        if (!out.empty()) out += ',';
        out += c;
    }
    return out;
}

std::string normalized_accept_language(std::string_view value) {
    std::vector<std::string> ranges;
    split(value, ',', [&](std::string_view element) {
        const auto semi = element.find(';');
        auto range = to_lower(trim(element.substr(0, semi)));
        if (range.empty()) return;
        std::string weight;  // empty: 1
        if (semi != std::string_view::npos) {
            split(element.substr(semi + 1), ';', [&](std::string_view p) {
                p = trim(p);
                if (p.size() < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=') return;
                auto q = trim(p.substr(2));
                // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ): trailing zeros go.
                std::string w(q);
                if (w.find('.') != std::string::npos) {
                    while (w.back() == '0') w.pop_back();
                    if (w.back() == '.') w.pop_back();
                }
                weight = w == "1" ? "" : w;
            });
        }
        if (weight == "0") return;  // "not acceptable": the same as not listed
        ranges.push_back(weight.empty() ? range : range + ";q=" + weight);
    });
    std::sort(ranges.begin(), ranges.end());
    ranges.erase(std::unique(ranges.begin(), ranges.end()), ranges.end());
    std::string out;
    for (const auto& r : ranges) {
        if (!out.empty()) out += ',';
        out += r;
    }
    return out;
}

std::string normalized_path(std::string_view path) { return normalize_percent(path); }

std::string normalized_url(std::string_view scheme, const http::Authority& authority, std::string_view target,
                           const config::RouteKey& rules) {
    std::string url(scheme);
    url += "://";
    url += authority.to_string();
    auto q = target.find('?');
    url += normalize_percent(target.substr(0, q));
    if (q != std::string_view::npos) {
        std::vector<std::string> params;
        split(target.substr(q + 1), '&', [&](std::string_view param) {
            if (param.empty()) return;
            auto name = param.substr(0, param.find('='));
            if (ignored(name, rules.ignore_query_params)) return;
            params.push_back(normalize_percent(param));
        });
        if (rules.sort_query) std::stable_sort(params.begin(), params.end());
        for (std::size_t i = 0; i < params.size(); ++i) {
            url += i == 0 ? '?' : '&';
            url += params[i];
        }
    }
    return url;
}

std::string primary_key(std::string_view method, std::string_view url, const http::Fields& request,
                        const config::RouteKey& rules) {
    std::string key = (method == "GET" || method == "HEAD") ? "GET" : std::string(method);
    key += ' ';
    key += url;

    for (const auto& name : rules.headers) {
        key += "\nh:";
        key += to_lower(name);
        key += '=';
        key += normalized_list(http::field_values(request, name));
    }
    if (!rules.cookies.empty()) {
        const auto cookie_header = http::field_values(request, "Cookie");
        for (const auto& name : rules.cookies) {
            key += "\nc:";
            key += name;
            key += '=';
            split(cookie_header, ';', [&](std::string_view pair) {
                pair = trim(pair);
                if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=')
                    key += pair.substr(name.size() + 1);
            });
        }
    }
    return key;
}

std::vector<std::string> vary_names(const http::Fields& response) {
    std::set<std::string> names;
    split(http::field_values(response, "Vary"), ',', [&](std::string_view n) {
        n = trim(n);
        if (!n.empty()) names.insert(to_lower(n));
    });
    if (names.count("*")) return {"*"};
    return {names.begin(), names.end()};
}

std::string variant_key(const std::vector<std::string>& vary, const http::Fields& request) {
    std::string key;
    for (const auto& name : vary) {
        if (!key.empty()) key += '\n';
        key += name;
        key += '=';
        auto value = http::field_values(request, name);
        if (name == "accept-encoding") key += normalized_accept_encoding(value);
        else if (name == "accept-language") key += normalized_accept_language(value);
        else key += normalized_list(value);
    }
    return key;
}

}  // namespace cachalot::cache
