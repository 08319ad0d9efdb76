#include "cachalot/cache/tiered_cache.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <random>

namespace cachalot::cache {
namespace {

constexpr std::string_view kInvalidationChannel = "invalidate";
constexpr std::string_view kPurgeMarksChannel = "purge-marks";  // "slot hard soft prev": the fast path
constexpr std::string_view kAppPurgeChannel = "purge";          // JSON from applications (README)

std::string marks_message(std::size_t slot, const store::PurgeMarks& m) {
    return std::to_string(slot) + " " + std::to_string(m.hard) + " " + std::to_string(m.soft) + " " +
           std::to_string(m.prev_soft);
}

// A purge-marks message, which comes from Redis: untrusted, checked like any other input.
std::optional<std::pair<std::size_t, store::PurgeMarks>> parse_marks(std::string_view message) {
    const std::string text(message.substr(0, 100));
    unsigned long long slot = 0;
    long long hard = 0, soft = 0, prev = 0;
    char extra = 0;
    if (message.size() > 100 ||
        std::sscanf(text.c_str(), "%llu %lld %lld %lld%c", &slot, &hard, &soft, &prev, &extra) != 4)
        return std::nullopt;
    if (slot >= store::PurgeTable::kSlots || hard < 0 || soft < 0 || prev < 0 || prev > soft) return std::nullopt;
    return std::pair{static_cast<std::size_t>(slot), store::PurgeMarks{hard, soft, prev}};
}

// Keeps the local purge table and Redis' in step: pulls what changed in Redis, and pushes what
// this host has that Redis lacks (purges made while Redis was away) until Redis has it all.
boost::asio::awaitable<void> resync_purges(store::RedisStore* l2, store::PurgeTable table,
                                           std::chrono::milliseconds every) {
    boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
    std::string version;
    store::WallMillis pushed_up_to = 0;
    for (;;) {
        const auto local_latest = table.latest();
        const bool push = local_latest > pushed_up_to;
        // (A full read when pushing: what Redis lacks is known only against all of it.)
        const std::string known = push ? std::string() : version;
        if (auto redis = co_await l2->read_purges(known)) {
            version = redis->version;
            std::vector<store::PurgeMarks> theirs;
            if (redis->complete && push) theirs.resize(store::PurgeTable::kSlots);
            for (const auto& [slot, marks] : redis->slots) {
                table.merge(slot, marks);
                if (!theirs.empty()) theirs[slot] = marks;
            }
            if (!theirs.empty()) {
                bool behind = false;
                for (std::size_t slot = 0; slot < store::PurgeTable::kSlots; ++slot) {
                    const auto ours = table.read(slot);
                    if (ours.hard > theirs[slot].hard || ours.soft > theirs[slot].soft) {
                        l2->merge_purge_later(slot, ours);
                        behind = true;
                    }
                }
                if (!behind) pushed_up_to = local_latest;  // Redis has everything: until the next purge
            }
        }
        pause.expires_after(every);
        co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
}

// Names this process in its invalidation messages, so that it skips its own.
const std::string& node_id() {
    static const std::string id = [] {
        std::random_device rd;
        return std::to_string(rd()) + std::to_string(rd());
    }();
    return id;
}

}  // namespace

boost::asio::awaitable<std::optional<Entry>> TieredCache::lookup(const std::string& key, bool l2_only) {
    const auto hash = store::hash_key(key);
    if (l1_ && !l2_only) {
        if (auto bytes = l1_->find(hash, key)) {
            if (auto entry = decode_entry(*bytes)) co_return entry;
            l1_->erase(hash, key);  // not ours to trust
        }
    }
    if (!l2_) co_return std::nullopt;
    auto found = co_await l2_->find_with_expiry(key);
    if (!found) co_return std::nullopt;
    auto entry = decode_entry(found->value);
    if (!entry) {
        l2_->discard(key);
        co_return std::nullopt;
    }
    if (l1_) l1_->put(hash, key, found->value, found->expiry);
    co_return entry;
}

bool TieredCache::insert(const std::string& key, const std::string& bytes, store::WallMillis expiry) {
    const auto hash = store::hash_key(key);
    bool stored = l1_ && l1_->put(hash, key, bytes, expiry);
    if (l2_ && l2_->put_later(key, bytes, expiry)) stored = true;
    return stored;
}

void TieredCache::erase(const std::string& key) {
    const auto hash = store::hash_key(key);
    if (l1_) l1_->erase(hash, key);
    if (!l2_) return;
    l2_->erase_later(key);
    l2_->publish_later(kInvalidationChannel, node_id() + "\n" + key, key);  // "NODE\nKEY", after the DEL
}

PurgeVerdict TieredCache::purge_verdict(const Entry& entry) const {
    if (!purges_) return {};
    return cache::purge_verdict(*purges_, entry);
}

void TieredCache::purge(std::string_view scope, PurgeMode mode, store::WallMillis at) {
    if (!purges_) return;
    cache::purge(*purges_, scope, mode, at);
    if (!l2_) return;
    const auto slot = purge_slot(scope);
    const auto marks = purges_->read(slot);
    l2_->merge_purge_later(slot, marks);
    l2_->publish_later(kPurgeMarksChannel, marks_message(slot, marks));
}

void TieredCache::listen_for_invalidations(AppPurgeHandler on_app_purge, std::chrono::milliseconds resync) {
    if (!l2_) return;
    l2_->subscribe({std::string(kInvalidationChannel), std::string(kPurgeMarksChannel), std::string(kAppPurgeChannel)},
                   [l1 = l1_, purges = purges_, on_app_purge = std::move(on_app_purge)](std::string_view channel,
                                                                                      std::string_view message) {
                       if (channel == kPurgeMarksChannel) {
                           if (auto m = parse_marks(message); m && purges) purges->merge(m->first, m->second);
                       } else if (channel == kAppPurgeChannel) {
                           if (on_app_purge) on_app_purge(message);
                       } else if (channel == kInvalidationChannel && l1) {
                           const auto nl = message.find('\n');
                           if (nl == std::string_view::npos || message.substr(0, nl) == node_id()) return;
                           const auto key = message.substr(nl + 1);
                           l1->erase(store::hash_key(key), key);
                       }
                   });
    if (purges_)
        boost::asio::co_spawn(l2_->executor(), resync_purges(l2_, *purges_, resync), boost::asio::detached);
}

}  // namespace cachalot::cache
