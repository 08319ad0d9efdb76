// Purge scopes, verdicts and tags: which stored entries a purge covers, and how.

#include "cachalot/cache/purge.hpp"

#include <catch2/catch.hpp>

using namespace cachalot;
using namespace cachalot::cache;

namespace {

constexpr store::WallMillis kFetched = 1'790'000'000'500;

// A response fetched at `ms`, with its tags and Cache-Groups members.
struct Fetched {
    store::WallMillis ms;
    std::vector<std::string> tags, groups;
};
Fetched fetched_at(store::WallMillis ms, std::vector<std::string> tags = {}, std::vector<std::string> groups = {}) {
    return {ms, std::move(tags), std::move(groups)};
}

// The verdict on that response, stored for `url` as the pipeline stores it.
PurgeVerdict verdict(const store::PurgeTable& table, const Fetched& f, std::string_view url) {
    Entry e;
    e.fetched_ms = f.ms;
    e.purge_slots = purge_slots(url, f.tags, f.groups);
    return purge_verdict(table, e);
}

PurgeVerdict::State state_after(PurgeKind kind, std::string_view origin, std::string_view what,
                                const Fetched& fetched, std::string_view url, PurgeMode mode = PurgeMode::Hard,
                                store::WallMillis at = kFetched + 1) {
    store::MemoryPurgeTable memory;
    purge(memory.table(), purge_scope(kind, origin, what), mode, at);
    return verdict(memory.table(), fetched, url).state;
}

http::Fields fields(std::initializer_list<std::pair<const char*, const char*>> list) {
    http::Fields f;
    for (const auto& [n, v] : list) f.insert(n, v);
    return f;
}

}  // namespace

TEST_CASE("purge: a URL purge covers that URL only") {
    const auto e = fetched_at(kFetched);
    const std::string url = "http://api.example/items/42?a=1";
    using S = PurgeVerdict::State;
    CHECK(state_after(PurgeKind::Url, "", url, e, url) == S::Gone);
    CHECK(state_after(PurgeKind::Url, "", "http://api.example/items/42", e, url) == S::Kept);
    CHECK(state_after(PurgeKind::Url, "", "http://other.example/items/42?a=1", e, url) == S::Kept);
}

TEST_CASE("purge: a prefix purge covers whole path segments under it, on its own origin") {
    const auto e = fetched_at(kFetched);
    using S = PurgeVerdict::State;
    const std::string origin = "http://api.example";
    struct Row {
        const char* prefix;
        const char* url;
        S expected;
    };
    const Row rows[] = {
        {"/", "http://api.example/anything?q=1", S::Gone},
        {"/items", "http://api.example/items", S::Gone},
        {"/items", "http://api.example/items/42", S::Gone},
        {"/items/", "http://api.example/items/42?x=1", S::Gone},
        {"/items/", "http://api.example/items", S::Gone},  // "/items/" and "/items" name one segment
        {"/items", "http://api.example/itemsets/1", S::Kept},  // not a whole segment
        {"/items/42", "http://api.example/items/4", S::Kept},
        {"/items", "http://api.example:8080/items/1", S::Kept},  // another origin
        {"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", "http://api.example/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/z", S::Gone},
    };
    for (const auto& r : rows) {
        INFO(r.prefix << " on " << r.url);
        CHECK(state_after(PurgeKind::Prefix, origin, r.prefix, e, r.url) == r.expected);
    }
    // Deeper than 16 segments, a prefix purges its 16-segment ancestor: more, never less.
}

TEST_CASE("purge: tag purges cover entries that name the tag, group purges those of the group's origin") {
    using S = PurgeVerdict::State;
    const std::string url = "http://api.example/u/42";
    const auto tagged = fetched_at(kFetched, {"user:42", "team:7"}, {"team:7"});
    CHECK(state_after(PurgeKind::Tag, "", "user:42", tagged, url) == S::Gone);
    CHECK(state_after(PurgeKind::Tag, "", "team:7", tagged, url) == S::Gone);
    CHECK(state_after(PurgeKind::Tag, "", "user:4", tagged, url) == S::Kept);
    CHECK(state_after(PurgeKind::Group, "http://api.example", "team:7", tagged, url) == S::Gone);
    // An origin can only invalidate its own groups, and only groups.
    CHECK(state_after(PurgeKind::Group, "http://evil.example", "team:7", tagged, url) == S::Kept);
    CHECK(state_after(PurgeKind::Group, "http://api.example", "user:42", tagged, url) == S::Kept);
    CHECK(state_after(PurgeKind::All, "", "", tagged, url) == S::Gone);
}

TEST_CASE("purge: an entry fetched after the purge is not covered; one fetched in the same millisecond is") {
    using S = PurgeVerdict::State;
    const std::string url = "http://api.example/x";
    CHECK(state_after(PurgeKind::All, "", "", fetched_at(kFetched), url, PurgeMode::Hard, kFetched - 1) == S::Kept);
    CHECK(state_after(PurgeKind::All, "", "", fetched_at(kFetched), url, PurgeMode::Hard, kFetched) == S::Gone);
}

TEST_CASE("purge: soft purges make entries stale from the purge, and repeated ones never extend that") {
    store::MemoryPurgeTable memory;
    auto& table = memory.table();
    const auto e = fetched_at(kFetched, {"t"});
    const std::string url = "http://api.example/x";
    purge(table, purge_scope(PurgeKind::Tag, "", "t"), PurgeMode::Soft, kFetched + 30'000);
    auto v = verdict(table, e, url);
    CHECK(v.state == PurgeVerdict::State::Stale);
    CHECK(v.stale_since == kFetched + 30'000);
    // A second soft purge later: stale since it was fetched, not since the later purge.
    purge(table, purge_scope(PurgeKind::Tag, "", "t"), PurgeMode::Soft, kFetched + 90'000);
    v = verdict(table, e, url);
    CHECK(v.state == PurgeVerdict::State::Stale);
    CHECK(v.stale_since <= kFetched + 30'000);
    // A soft purge and a hard one: gone.
    purge(table, purge_scope(PurgeKind::Url, "", url), PurgeMode::Hard, kFetched + 100'000);
    CHECK(verdict(table, e, url).state == PurgeVerdict::State::Gone);
}

TEST_CASE("purge: tags come from the configured field, Cache-Tag and Cache-Groups, bounded") {
    config::Tags rules;
    std::vector<std::string> tags, groups;
    const auto cut = response_tags(fields({{"Surrogate-Key", "user:42  item:7"},
                                           {"Cache-Tag", "item:7, list , x\x01y"},
                                           {"Cache-Groups", "\"scripts\", \"a \\\"quoted\\\" one\""}}),
                                   rules, tags, groups);
    CHECK(tags == std::vector<std::string>{"user:42", "item:7", "list", "scripts", "a \"quoted\" one"});
    CHECK(groups == std::vector<std::string>{"scripts", "a \"quoted\" one"});
    CHECK(cut == 1);  // the tag with a control byte

    rules.max_count = 2;
    tags.clear();
    groups.clear();
    CHECK(response_tags(fields({{"Surrogate-Key", "a b c d"}}), rules, tags, groups) == 2);
    CHECK(tags == std::vector<std::string>{"a", "b"});
    rules.max_count = 64;
    rules.max_bytes = 5;
    tags.clear();
    CHECK(response_tags(fields({{"Surrogate-Key", "abc de fgh"}}), rules, tags, groups) == 1);
    CHECK(tags == std::vector<std::string>{"abc", "de"});
    rules.header = "X-Tags";
    tags.clear();
    CHECK(response_tags(fields({{"Surrogate-Key", "ignored"}, {"x-tags", "t1"}}), rules, tags, groups) == 0);
    CHECK(tags == std::vector<std::string>{"t1"});
}

TEST_CASE("purge: Cache-Groups must be a list of strings, or it is ignored as a whole") {
    CHECK(parse_group_list("\"a\", \"b\"") == std::vector<std::string>{"a", "b"});
    CHECK(parse_group_list("\"a\",\"b\"") == std::vector<std::string>{"a", "b"});
    CHECK(parse_group_list("") == std::vector<std::string>{});
    for (const char* bad : {"a", "\"a\", b", "\"a\",", "\"unterminated", "\"a\" \"b\"", "\"bad \\n escape\"",
                            "\"a\";param=1"}) {
        INFO(bad);
        CHECK_FALSE(parse_group_list(bad));
    }
}
