#include "cachalot/http/headers.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace cachalot::http {

namespace {

bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
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
// span of the insertion-ordered list, which also covers other fields in between.)
template <class F>
void for_each_field_value(const Fields& fields, std::string_view name, F&& f) {
    for (const auto& entry : fields)
        if (ascii_iequals(entry.name_string(), name)) f(entry.value());
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
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::string field_values(const Fields& fields, std::string_view name) {
    std::string out;
    for (const auto& f : fields) {
        if (!ascii_iequals(f.name_string(), name)) continue;
        if (!out.empty()) out += ", ";
        out += trim(f.value());
    }
    return out;
}

void strip_hop_by_hop(Fields& fields) {
    std::vector<std::string> named;
    for_each_field_value(fields, "Connection", [&](std::string_view value) {
        for_each_list_element(value, [&](std::string_view token) { named.emplace_back(token); });
    });
    for (const auto& name : named) fields.erase(name);

    static constexpr std::array fixed{
        bhttp::field::connection,         bhttp::field::keep_alive,         bhttp::field::te,
        bhttp::field::trailer,            bhttp::field::transfer_encoding,  bhttp::field::upgrade,
        bhttp::field::proxy_connection,   bhttp::field::proxy_authenticate, bhttp::field::proxy_authorization,
    };
    for (auto f : fixed) fields.erase(f);
}

void add_forwarded(Fields& fields, const ForwardedFor& fwd) {
    std::string xff;
    for_each_field_value(fields, "X-Forwarded-For", [&](std::string_view value) {
        if (!xff.empty()) xff += ", ";
        xff += trim(value);
    });
    if (!xff.empty()) xff += ", ";
    xff += fwd.client_address;
    fields.set("X-Forwarded-For", xff);
    // The same hop as an RFC 7239 element, appended: quoted, so IPv6 and ports need no care.
    std::string forwarded;
    for_each_field_value(fields, "Forwarded", [&](std::string_view value) {
        if (!forwarded.empty()) forwarded += ", ";
        forwarded += trim(value);
    });
    if (!forwarded.empty()) forwarded += ", ";
    const bool v6 = fwd.client_address.find(':') != std::string::npos;
    forwarded += "for=\"" + std::string(v6 ? "[" : "") + fwd.client_address + (v6 ? "]" : "") + "\"";
    if (!fwd.host.empty()) forwarded += ";host=\"" + fwd.host + "\"";
    forwarded += ";proto=" + fwd.proto;
    fields.set("Forwarded", forwarded);
    fields.set("X-Forwarded-Proto", fwd.proto);
    if (fwd.host.empty()) fields.erase("X-Forwarded-Host");
    else fields.set("X-Forwarded-Host", fwd.host);
}

void add_via(Fields& fields, std::string_view pseudonym) {
    std::string via;
    for_each_field_value(fields, "Via", [&](std::string_view value) {
        if (!via.empty()) via += ", ";
        via += trim(value);
    });
    if (!via.empty()) via += ", ";
    via += "1.1 ";
    via += pseudonym;
    fields.set(bhttp::field::via, via);
}

std::optional<std::string> ambiguous_framing(const Fields& fields) {
    std::optional<std::string_view> length;
    std::size_t length_fields = 0;
    bool bad_length = false;
    for_each_field_value(fields, "Content-Length", [&](std::string_view value) {
        ++length_fields;
        if (trim(value).empty()) bad_length = true;
        for_each_list_element(value, [&](std::string_view v) {
            if (!std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) bad_length = true;
            else if (length && *length != v) bad_length = true;
            else length = v;
        });
    });
    if (bad_length) return "invalid or conflicting Content-Length";
    auto te_count = fields.count(bhttp::field::transfer_encoding);
    if (te_count > 0) {
        if (length_fields > 0) return "both Content-Length and Transfer-Encoding";
        // Only plain "chunked" is accepted: other codings would have to be decoded here, and a
        // repeated chunked is invalid (RFC 9112 §6.1).
        std::size_t codings = 0;
        bool chunked = false;
        for_each_field_value(fields, "Transfer-Encoding", [&](std::string_view value) {
            for_each_list_element(value, [&](std::string_view v) {
                ++codings;
                chunked = iequals(v, "chunked");
            });
        });
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
