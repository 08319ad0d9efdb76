#include "cachalot/cache/purge.hpp"

#include "cachalot/store/store.hpp"

#include <algorithm>
#include <initializer_list>

namespace cachalot::cache {
namespace {

constexpr std::size_t kMaxSegments = 16;

// "scheme://authority" and "/path" of a normalized URL ("scheme://authority/path?query").
std::pair<std::string_view, std::string_view> split_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    const auto path_at = url.find('/', scheme_end == std::string_view::npos ? 0 : scheme_end + 3);
    if (path_at == std::string_view::npos) return {url, "/"};
    auto path = url.substr(path_at);
    return {url.substr(0, path_at), path.substr(0, path.find('?'))};
}

// The whole-segment prefixes of `path`, shortest first, at most kMaxSegments deep: for
// "/a/b/c": "/", "/a", "/a/b", "/a/b/c". A trailing '/' adds no segment.
template <class F>
void for_each_prefix(std::string_view path, F&& f) {
    f(std::string_view("/"));
    std::size_t segments = 0;
    for (std::size_t i = 1; i <= path.size() && segments < kMaxSegments; ++i) {
        if (i < path.size() && path[i] != '/') continue;
        if (path[i - 1] == '/') continue;  // an empty segment ("//", or a trailing '/')
        f(path.substr(0, i));
        ++segments;
    }
}

bool visible_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

template <class F>
void split_on(std::string_view s, char sep, F&& f) {
    while (!s.empty()) {
        const auto at = s.find(sep);
        f(s.substr(0, at));
        if (at == std::string_view::npos) break;
        s.remove_prefix(at + 1);
    }
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::string purge_scope(PurgeKind kind, std::string_view origin, std::string_view what) {
    switch (kind) {
        case PurgeKind::Url: return "u " + std::string(what);
        case PurgeKind::Prefix: {
            std::string_view deepest = "/";
            for_each_prefix(what, [&](std::string_view p) { deepest = p; });
            return "p " + std::string(origin) + std::string(deepest);
        }
        case PurgeKind::Tag: return "t " + std::string(what);
        case PurgeKind::Group: return "g " + std::string(origin) + " " + std::string(what);
        case PurgeKind::All: return "*";
    }
    return "*";
}

std::size_t purge_slot(std::string_view scope) {
    if (scope == "*") return 0;
    return 1 + store::hash_key(scope) % (store::PurgeTable::kSlots - 1);
}

void purge(store::PurgeTable& table, std::string_view scope, PurgeMode mode, store::WallMillis at) {
    store::PurgeMarks marks;
    (mode == PurgeMode::Hard ? marks.hard : marks.soft) = at;
    table.merge(purge_slot(scope), marks);
}

static_assert(store::PurgeTable::kSlots <= 65536, "Entry::purge_slots holds slots as 16-bit numbers");

std::vector<std::uint16_t> purge_slots(std::string_view url, const std::vector<std::string>& tags,
                                       const std::vector<std::string>& groups) {
    std::vector<std::uint16_t> slots;
    std::string scope;
    auto add = [&](std::initializer_list<std::string_view> parts) {
        scope.clear();
        for (auto part : parts) scope += part;
        const auto slot = static_cast<std::uint16_t>(purge_slot(scope));
        if (std::find(slots.begin(), slots.end(), slot) == slots.end()) slots.push_back(slot);
    };
    const auto [origin, path] = split_url(url);
    add({"u ", url});
    for_each_prefix(path, [&](std::string_view prefix) { add({"p ", origin, prefix}); });
    for (const auto& tag : tags) add({"t ", tag});
    for (const auto& group : groups) add({"g ", origin, " ", group});
    return slots;
}

PurgeVerdict purge_verdict(const store::PurgeTable& table, const Entry& entry) {
    PurgeVerdict verdict;
    const auto latest = table.latest();
    if (latest == 0 || latest < entry.fetched_ms) return verdict;  // nothing purged since it was fetched

    store::WallMillis stale_since = 0;
    bool gone = false;
    auto check = [&](std::size_t slot) {
        const auto m = table.read(slot);
        if (m.hard > 0 && m.hard >= entry.fetched_ms) gone = true;
        if (m.soft > 0 && m.soft >= entry.fetched_ms) {
            // Only the latest soft purge came after it: stale since then. Two or more: since it
            // was fetched (the earlier one is not known exactly, and must not be taken as later).
            const auto since = m.prev_soft >= entry.fetched_ms ? entry.fetched_ms : m.soft;
            stale_since = stale_since == 0 ? since : std::min(stale_since, since);
        }
    };
    check(0);
    for (const auto slot : entry.purge_slots) check(slot);

    if (gone) verdict.state = PurgeVerdict::State::Gone;
    else if (stale_since != 0) verdict = {PurgeVerdict::State::Stale, stale_since};
    return verdict;
}

std::optional<std::vector<std::string>> parse_group_list(std::string_view value) {
    // sf-list of sf-string members (RFC 8941 §3.1, §3.3.3), parameters refused: the groups are
    // the strings' contents.
    std::vector<std::string> out;
    value = trim(value);
    if (value.empty()) return out;
    std::size_t i = 0;
    for (;;) {
        if (i >= value.size() || value[i] != '"') return std::nullopt;
        std::string member;
        for (++i;; ++i) {
            if (i >= value.size()) return std::nullopt;
            const unsigned char c = static_cast<unsigned char>(value[i]);
            if (c == '"') break;
            if (c == '\\') {
                if (++i >= value.size() || (value[i] != '"' && value[i] != '\\')) return std::nullopt;
                member += value[i];
            } else if (c < 0x20 || c > 0x7e) {
                return std::nullopt;
            } else {
                member += static_cast<char>(c);
            }
        }
        out.push_back(std::move(member));
        ++i;
        while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
        if (i == value.size()) return out;
        if (value[i] != ',') return std::nullopt;
        ++i;
        while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
        if (i == value.size()) return std::nullopt;  // a trailing comma
    }
}

std::size_t response_tags(const http::Fields& response, const config::Tags& rules, std::vector<std::string>& tags,
                          std::vector<std::string>& groups) {
    std::size_t cut = 0, bytes = 0;
    auto add = [&](std::string_view tag, bool group) {
        if (tag.empty()) return;
        if (!group && !visible_ascii(tag)) {
            ++cut;
            return;
        }
        if (std::find(tags.begin(), tags.end(), tag) == tags.end()) {
            if (tags.size() >= rules.max_count || bytes + tag.size() > rules.max_bytes) {
                ++cut;
                return;
            }
            bytes += tag.size();
            tags.emplace_back(tag);
        }
        if (group && std::find(groups.begin(), groups.end(), tag) == groups.end()) groups.emplace_back(tag);
    };
    for (const auto& f : response) {
        const auto name = f.name_string();
        if (http::iequals(name, rules.header)) {
            split_on(f.value(), ' ', [&](std::string_view t) { add(trim(t), false); });
        } else if (http::iequals(name, "Cache-Tag")) {
            split_on(f.value(), ',', [&](std::string_view t) { add(trim(t), false); });
        } else if (http::iequals(name, "Cache-Groups")) {
            if (auto members = parse_group_list(f.value()))
                for (const auto& m : *members) add(m, true);
            else
                ++cut;
        }
    }
    return cut;
}

}  // namespace cachalot::cache
