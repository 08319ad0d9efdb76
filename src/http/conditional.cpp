#include "cachalot/http/conditional.hpp"

namespace cachalot::http {

bool has_origin_precondition(const Fields& request) {
    for (const auto& f : request)
        if (f.name() == bhttp::field::if_match || f.name() == bhttp::field::if_unmodified_since) return true;
    return false;
}

bool has_cache_condition(const Fields& request) {
    for (const auto& f : request)
        switch (f.name()) {
            case bhttp::field::if_none_match:
            case bhttp::field::if_modified_since:
            case bhttp::field::range:
            case bhttp::field::if_range: return true;
            default: break;
        }
    return false;
}

bool weak_etag_match(std::string_view a, std::string_view b) {
    a = trim(a);
    b = trim(b);
    if (a.substr(0, 2) == "W/") a.remove_prefix(2);
    if (b.substr(0, 2) == "W/") b.remove_prefix(2);
    return a.size() >= 2 && a.front() == '"' && a.back() == '"' && a == b;
}

bool not_modified(const Fields& request, const Fields& stored, Time now) {
    const auto inm = field_values(request, "If-None-Match");
    if (!inm.empty()) {
        const auto etag = field_values(stored, "ETag");
        if (trim(inm) == "*") return true;
        if (etag.empty()) return false;
        // Entity-tags may contain commas only inside quotes; split at commas outside them.
        std::string_view list = inm;
        bool quoted = false;
        std::size_t start = 0;
        for (std::size_t i = 0; i <= list.size(); ++i) {
            if (i < list.size() && list[i] == '"') quoted = !quoted;
            if (i == list.size() || (list[i] == ',' && !quoted)) {
                if (weak_etag_match(list.substr(start, i - start), etag)) return true;
                start = i + 1;
            }
        }
        return false;
    }
    const auto ims_text = field_values(request, "If-Modified-Since");
    if (ims_text.empty()) return false;
    auto ims = parse_http_date(ims_text, now);
    if (!ims || *ims > now) return false;  // an invalid or future date is ignored
    auto lm_text = field_values(stored, "Last-Modified");
    if (lm_text.empty()) lm_text = field_values(stored, "Date");
    auto lm = parse_http_date(lm_text, now);
    return lm && *lm <= *ims;
}

bool sent_with_304(std::string_view name) {
    for (std::string_view n : {"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary", "Last-Modified"})
        if (iequals(name, n)) return true;
    return false;
}

}  // namespace cachalot::http
