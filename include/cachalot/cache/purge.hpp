#pragma once
// Purges by generation, not by index: a purge writes one time into the purge table for its
// scope; a lookup compares the times of the entry's scopes with when the entry was fetched.
// Nothing is enumerated, and a purge costs the same however many entries it hits.
//
// An entry's scopes, each hashed to a slot of the table (slot 0: everything) when the entry is
// stored; the entry keeps the slots, so a lookup only reads the table:
//   "u <url>"          its normalized URL (scheme://authority/path?query, as the key rules
//                      normalize it): every Vary variant and key-header split of that URL;
//   "p <origin><path>" each whole-segment prefix of its path: for /a/b/c, "/", "/a", "/a/b"
//                      and "/a/b/c" (the first 16 segments; a deeper prefix purges its 16th);
//   "t <tag>"          each of its tags (Surrogate-Key, Cache-Tag, Cache-Groups);
//   "g <origin> <group>"  each Cache-Groups member, for Cache-Group-Invalidation, which an
//                      origin may only send for its own groups (RFC 9875).
// An entry fetched at or before its scope's latest hard purge is gone; at or before a soft
// purge, it is stale since that purge (since it was fetched, when two or more soft purges came
// after it: repeated soft purges shorten its life, never extend it).
// No I/O, no clock: times are passed in.

#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/outcome.hpp"
#include "cachalot/config/config.hpp"
#include "cachalot/http/headers.hpp"
#include "cachalot/store/purge_table.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::cache {


/// The scope names a purge of `kind` writes: `origin` is "scheme://authority" (prefix and
/// group purges), `what` the URL (normalized), the path prefix, the tag or the group.
std::string purge_scope(PurgeKind kind, std::string_view origin, std::string_view what);

/// The slot a scope is kept in.
std::size_t purge_slot(std::string_view scope);

/// Writes a purge of `scope` at `at` into `table`: entries of that scope fetched at or before
/// then are gone (hard) or stale (soft).
void purge(store::PurgeTable& table, std::string_view scope, PurgeMode mode, store::WallMillis at);

/// The slots of the scopes of a response stored for `url` (normalized:
/// scheme://authority/path?query) with these tags and Cache-Groups members: Entry::purge_slots.
std::vector<std::uint16_t> purge_slots(std::string_view url, const std::vector<std::string>& tags,
                                       const std::vector<std::string>& groups);

/// What the purge table says of a stored entry.
struct PurgeVerdict {
    enum class State { Kept, Gone, Stale } state = State::Kept;
    store::WallMillis stale_since = 0;  // Stale: treat it as stale from this time on
};

/// Judges `entry` by the purge times of everything and of its purge_slots.
PurgeVerdict purge_verdict(const store::PurgeTable& table, const Entry& entry);

/// The tags a response names, bounded by `rules`: the configured field (space-separated),
/// Cache-Tag (comma-separated) and Cache-Groups (a list of strings: RFC 9875). `groups`
/// receives the Cache-Groups members. Returns how many tags were cut by the bounds.
std::size_t response_tags(const http::Fields& response, const config::Tags& rules, std::vector<std::string>& tags,
                          std::vector<std::string>& groups);

/// The members of a Cache-Groups or Cache-Group-Invalidation value (a structured-field list of
/// strings, RFC 8941); nothing when it does not parse as one.
std::optional<std::vector<std::string>> parse_group_list(std::string_view value);

}  // namespace cachalot::cache
