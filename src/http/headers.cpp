#include "cachalot/http/headers.hpp"

#include <algorithm>
#include <vector>

namespace cachalot::http {

namespace {

// ASCII only, whatever the locale (std::tolower is a locale lookup per call).
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c; }

bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// Calls f for each non-empty element of a comma-separated list.
template <class F>
void for_each_list_element(std::string_view list, F&& f) {
    while (!list.empty()) {
        auto comma = list.find(',');
        auto element = trim(list.substr(0, comma));
        if (!element.empty()) f(element);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

// Calls f with the value of every field named `name`, in order. (Beast's equal_range yields a
// span of the insertion-ordered list, which also covers other fields in between.) Known names
// compare as Beast's field codes, which the parser set once.
template <class F>
void for_each_field_value(const Fields& fields, bhttp::field name, F&& f) {
    for (const auto& entry : fields)
        if (entry.name() == name) f(entry.value());
}
template <class F>
void for_each_field_value(const Fields& fields, std::string_view name, F&& f) {
    if (const auto known = bhttp::string_to_field(name); known != bhttp::field::unknown)
        return for_each_field_value(fields, known, std::forward<F>(f));
    for (const auto& entry : fields)
        if (entry.name() == bhttp::field::unknown && ascii_iequals(entry.name_string(), name)) f(entry.value());
}

// Appends `value` to the list `out` (", " between elements).
void append_element(std::string& out, std::string_view value) {
    if (!out.empty()) out += ", ";
    out += value;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

std::string field_values(const Fields& fields, std::string_view name) {
    std::string out;
    for_each_field_value(fields, name, [&](std::string_view value) {
        if (!out.empty()) out += ", ";
        out += trim(value);
    });
    return out;
}

void erase_named(Fields& fields, const std::vector<std::string>& names) {
    if (names.empty()) return;
    for (auto it = fields.begin(); it != fields.end();) {
        const auto name = it->name_string();
        if (std::any_of(names.begin(), names.end(), [&](const std::string& n) { return ascii_iequals(n, name); }))
            it = fields.erase(it);
        else
            ++it;
    }
}

void strip_hop_by_hop(Fields& fields) {
    // One pass over the fields for the fixed set, noting what Connection names; a second only
    // when it names something.
    std::vector<std::string_view> named;
    std::string connection;  // the names point into it: the fields they came from are erased
    for (auto it = fields.begin(); it != fields.end();) {
        switch (it->name()) {
        case bhttp::field::connection:
            append_element(connection, it->value());
            [[fallthrough]];
        case bhttp::field::keep_alive:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
        case bhttp::field::proxy_connection:
        case bhttp::field::proxy_authenticate:
        case bhttp::field::proxy_authorization:
            it = fields.erase(it);
            break;
        default:
            ++it;
        }
    }
    if (connection.empty()) return;
    for_each_list_element(connection, [&](std::string_view token) { named.push_back(token); });
    for (auto it = fields.begin(); it != fields.end();) {
        const auto name = it->name_string();
        if (std::any_of(named.begin(), named.end(), [&](std::string_view n) { return ascii_iequals(n, name); }))
            it = fields.erase(it);
        else
            ++it;
    }
}

bool is_forwarding_field(std::string_view name) {
    return ascii_iequals(name, "X-Forwarded-For") || ascii_iequals(name, "Forwarded") ||
           ascii_iequals(name, "X-Forwarded-Proto") || ascii_iequals(name, "X-Forwarded-Host") ||
           ascii_iequals(name, "Via");
}

namespace {
// Appends this hop to the Via list `via` (what earlier hops wrote, or empty).
void append_via(std::string& via, std::string_view pseudonym) {
    if (!via.empty()) via += ", ";
    via += "1.1 ";
    via += pseudonym;
}
}  // namespace

Forwarding forwarding_fields(const Fields& fields, const ForwardedFor& fwd, std::string_view pseudonym) {
    Forwarding out;
    for (const auto& f : fields) {
        const auto name = f.name_string();
        const auto value = trim(f.value());
        if (value.empty()) continue;
        if (f.name() == bhttp::field::forwarded) append_element(out.forwarded, value);
        else if (f.name() == bhttp::field::via) append_element(out.via, value);
        else if (ascii_iequals(name, "X-Forwarded-For")) append_element(out.x_forwarded_for, value);
    }
    append_element(out.x_forwarded_for, fwd.client_address);
    // The same hop as an RFC 7239 element, appended: quoted, so IPv6 and ports need no care.
    const bool v6 = fwd.client_address.find(':') != std::string::npos;
    auto& forwarded = out.forwarded;
    if (!forwarded.empty()) forwarded += ", ";
    forwarded += v6 ? "for=\"[" : "for=\"";
    forwarded += fwd.client_address;
    forwarded += v6 ? "]\"" : "\"";
    if (!fwd.host.empty()) {
        forwarded += ";host=\"";
        forwarded += fwd.host;
        forwarded += '"';
    }
    forwarded += ";proto=";
    forwarded += fwd.proto;
    out.x_forwarded_proto = fwd.proto;
    out.x_forwarded_host = fwd.host;
    append_via(out.via, pseudonym);
    return out;
}

void add_via(Fields& fields, std::string_view pseudonym) {
    std::string via;
    for (auto it = fields.begin(); it != fields.end();) {
        if (it->name() != bhttp::field::via) {
            ++it;
            continue;
        }
        if (auto v = trim(it->value()); !v.empty()) append_element(via, v);
        it = fields.erase(it);
    }
    append_via(via, pseudonym);
    fields.insert(bhttp::field::via, via);
}

std::optional<std::string> ambiguous_framing(const Fields& fields) {
    std::optional<std::string_view> length;
    std::size_t length_fields = 0;
    std::size_t te_fields = 0;
    std::size_t codings = 0;
    bool bad_length = false;
    bool chunked = false;
    for (const auto& f : fields) {
        if (f.name() == bhttp::field::content_length) {
            ++length_fields;
            if (trim(f.value()).empty()) bad_length = true;
            for_each_list_element(f.value(), [&](std::string_view v) {
                if (!std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) bad_length = true;
                else if (length && *length != v) bad_length = true;
                else length = v;
            });
        } else if (f.name() == bhttp::field::transfer_encoding) {
            ++te_fields;
            for_each_list_element(f.value(), [&](std::string_view v) {
                ++codings;
                chunked = ascii_iequals(v, "chunked");
            });
        }
    }
    if (bad_length) return "invalid or conflicting Content-Length";
    if (te_fields > 0) {
        if (length_fields > 0) return "both Content-Length and Transfer-Encoding";
        // Only plain "chunked" is accepted: other codings would have to be decoded here, and a
        // repeated chunked is invalid (RFC 9112 §6.1).
        if (codings != 1 || !chunked) return "unsupported Transfer-Encoding (only chunked is accepted)";
    }
    return std::nullopt;
}

bool is_idempotent(std::string_view method) {
    for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
        if (method == m) return true;
    return false;
}

}  // namespace cachalot::http
