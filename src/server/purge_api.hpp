#pragma once
// What a purge request asks for, as JSON: the body of POST /purge on the admin listener (and, in
// the same format, a message an application publishes to the purge channel).
//
//   {"url": "http://api.example/items/42?b=2&a=1"}     every variant of that URL
//   {"url": "/items/42", "host": "api.example"}       the same
//   {"prefix": "/items/", "host": "api.example"}      every URL under that path, by whole segments
//   {"tags": ["user:42", "item:7"]}  or  {"tag": "user:42"}
//   {"all": true}
// with "soft": true for a soft purge (stale, revalidated) instead of a hard one (gone).
// Parsing is pure; applying writes the purge table.

#include "cachalot/cache/outcome.hpp"
#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/store/purge_table.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cachalot::server {

struct PurgeOrder {
    cache::PurgeKind kind = cache::PurgeKind::All;
    cache::PurgeMode mode = cache::PurgeMode::Hard;
    std::vector<std::string> scopes;  // purge-table scopes (cache::purge_scope)
    std::string what;                 // the URL, prefix or tags, for the log and the answer
};

/// The order in `json`, or why it is refused (a sentence for a 400 answer). URLs are normalized
/// with the key rules of the route they match.
std::variant<PurgeOrder, std::string> parse_purge(std::string_view json, const config::Config& cfg);

/// Writes the order into `table` at `now` and counts it.
void apply_purge(const PurgeOrder& order, store::PurgeTable& table, store::WallMillis now,
                 const metrics::Metrics& metrics);

/// The JSON answer to an applied order.
std::string purge_answer(const PurgeOrder& order, store::WallMillis at);

}  // namespace cachalot::server
