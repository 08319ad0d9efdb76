#pragma once
// A stored response as bytes: the encoding shared by every tier (L1 and the Redis L2).
// Versioned and checksummed; decoding never trusts its input (bounds-checked, and any mismatch
// of magic, version, length or checksum is a refusal, never a partial entry).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachalot::cache {

struct Entry {
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // in order, hop-by-hop already removed
    std::string body;
    std::int64_t request_time = 0;   // Unix seconds: when the request went to the origin
    std::int64_t response_time = 0;  // Unix seconds: when the response came back
    std::vector<std::string> vary;   // the response's Vary names (lower-case, sorted)
    std::string variant;             // the secondary key this entry answers (empty without Vary)
    std::string vary_epoch;          // names the set of variants stored together; a new one after an invalidation
    std::int64_t lifetime_jitter = 0;  // seconds added to the freshness lifetime (cache.ttl_jitter)
    /// Unix ms when the request that fetched (or last revalidated) it left for the origin: purges
    /// at or after this time cover it (cache/purge.hpp).
    std::int64_t fetched_ms = 0;
    /// The purge-table slots of its scopes (URL, path prefixes, tags, groups), worked out when it
    /// is stored, so that a lookup reads them without hashing anything (cache/purge.hpp).
    std::vector<std::uint16_t> purge_slots;
};

inline constexpr std::uint16_t kEntryVersion = 5;

std::string encode_entry(const Entry& entry);

/// The entry, or nothing when the bytes are not a whole, intact entry of this version.
std::optional<Entry> decode_entry(std::string_view bytes);

}  // namespace cachalot::cache
