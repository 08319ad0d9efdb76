#include "cachalot/http/structured_field.hpp"

#include <algorithm>

namespace cachalot::http {
namespace {

bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool alpha(char c) { return lcalpha(c) || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool tchar(char c) {
    return alpha(c) || digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool base64(char c) { return alpha(c) || digit(c) || c == '+' || c == '/' || c == '='; }

// A parser over the field's text, each step as RFC 8941 §4.2 writes it; a failed step makes
// `ok` false and everything after it a no-op.
struct Parser {
    std::string_view s;
    std::size_t i = 0;
    bool ok = true;

    bool at_end() const { return i >= s.size(); }
    char peek() const { return at_end() ? '\0' : s[i]; }
    bool fail() { return ok = false; }
    void skip_sp() {
        while (!at_end() && s[i] == ' ') ++i;
    }
    void skip_ows() {
        while (!at_end() && (s[i] == ' ' || s[i] == '\t')) ++i;
    }

    // §4.2.3.3
    std::string key() {
        if (!(lcalpha(peek()) || peek() == '*')) return fail(), std::string();
        const auto start = i;
        while (!at_end() && (lcalpha(s[i]) || digit(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.' || s[i] == '*'))
            ++i;
        return std::string(s.substr(start, i - start));
    }

    // §4.2.4 (Integer or Decimal)
    void number(StructuredItem& item) {
        const auto start = i;
        bool negative = false;
        if (peek() == '-') negative = true, ++i;
        if (!digit(peek())) return void(fail());
        std::size_t int_digits = 0, frac_digits = 0;
        bool decimal = false;
        while (!at_end()) {
            const char c = s[i];
            if (digit(c)) {
                (decimal ? frac_digits : int_digits)++;
                ++i;
            } else if (c == '.' && !decimal) {
                if (int_digits > 12) return void(fail());
                decimal = true;
                ++i;
            } else {
                break;
            }
            if (!decimal && int_digits > 15) return void(fail());
            if (decimal && frac_digits > 3) return void(fail());
        }
        if (decimal) {
            if (frac_digits == 0) return void(fail());
            item.type = StructuredItem::Type::Decimal;
            item.text = std::string(s.substr(start, i - start));
            return;
        }
        std::int64_t v = 0;
        for (auto c : s.substr(start + (negative ? 1 : 0), int_digits)) v = v * 10 + (c - '0');
        item.type = StructuredItem::Type::Integer;
        item.integer = negative ? -v : v;
    }

    // §4.2.1.1 (a bare item)
    void bare_item(StructuredItem& item) {
        const char c = peek();
        if (c == '-' || digit(c)) return number(item);
        if (c == '"') {
            ++i;
            item.type = StructuredItem::Type::String;
            for (;;) {
                if (at_end()) return void(fail());
                const char d = s[i++];
                if (d == '\\') {
                    if (at_end() || (s[i] != '"' && s[i] != '\\')) return void(fail());
                    item.text += s[i++];
                } else if (d == '"') {
                    return;
                } else if (d < 0x20 || d > 0x7e) {
                    return void(fail());
                } else {
                    item.text += d;
                }
            }
        }
        if (alpha(c) || c == '*') {
            const auto start = i;
            while (!at_end() && (tchar(s[i]) || s[i] == ':' || s[i] == '/')) ++i;
            item.type = StructuredItem::Type::Token;
            item.text = std::string(s.substr(start, i - start));
            return;
        }
        if (c == ':') {
            ++i;
            const auto start = i;
            while (!at_end() && base64(s[i])) ++i;
            if (peek() != ':') return void(fail());
            item.type = StructuredItem::Type::ByteSequence;
            item.text = std::string(s.substr(start, i - start));
            ++i;
            return;
        }
        if (c == '?') {
            ++i;
            if (peek() != '0' && peek() != '1') return void(fail());
            item.type = StructuredItem::Type::Boolean;
            item.boolean = s[i++] == '1';
            return;
        }
        fail();
    }

    // §4.2.3.2: parsed and dropped (no directive of a targeted field has any).
    void parameters() {
        while (ok && peek() == ';') {
            ++i;
            skip_sp();
            key();
            if (ok && peek() == '=') {
                ++i;
                StructuredItem ignored;
                bare_item(ignored);
            }
        }
    }

    // §4.2.1.2
    void inner_list(StructuredItem& item) {
        ++i;  // '('
        item.type = StructuredItem::Type::InnerList;
        while (ok) {
            skip_sp();
            if (peek() == ')') {
                ++i;
                return parameters();
            }
            StructuredItem member;
            bare_item(member);
            parameters();
            if (!ok) return;
            if (peek() != ' ' && peek() != ')') return void(fail());
        }
    }
};

}  // namespace

std::optional<std::vector<StructuredMember>> parse_dictionary(std::string_view text) {
    Parser p{text};
    std::vector<StructuredMember> members;
    p.skip_sp();
    while (p.ok && !p.at_end()) {
        StructuredMember m;
        m.key = p.key();
        if (p.ok && p.peek() == '=') {
            ++p.i;
            if (p.peek() == '(') {
                p.inner_list(m.value);
            } else {
                p.bare_item(m.value);
                p.parameters();
            }
        } else {
            p.parameters();  // a bare key is Boolean true, with parameters
        }
        if (!p.ok) break;
        auto same = std::find_if(members.begin(), members.end(), [&](const auto& x) { return x.key == m.key; });
        if (same != members.end()) same->value = std::move(m.value);
        else members.push_back(std::move(m));
        p.skip_ows();
        if (p.at_end()) break;
        if (p.peek() != ',') return std::nullopt;
        ++p.i;
        p.skip_ows();
        if (p.at_end()) return std::nullopt;  // a trailing comma
    }
    if (!p.ok) return std::nullopt;
    return members;
}

}  // namespace cachalot::http
