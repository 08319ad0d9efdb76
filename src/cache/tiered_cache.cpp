#include "cachalot/cache/tiered_cache.hpp"

#include <random>

namespace cachalot::cache {
namespace {

constexpr std::string_view kInvalidationChannel = "invalidate";

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
    l2_->publish_later(kInvalidationChannel, node_id() + "\n" + key);  // "NODE\nKEY"
}

PurgeVerdict TieredCache::purge_verdict(const Entry& entry, std::string_view url) const {
    if (!purges_) return {};
    return cache::purge_verdict(*purges_, entry, url);
}

void TieredCache::purge(std::string_view scope, PurgeMode mode, store::WallMillis at) {
    if (purges_) cache::purge(*purges_, scope, mode, at);
}

void TieredCache::listen_for_invalidations() {
    if (!l1_ || !l2_) return;
    l2_->subscribe(std::string(kInvalidationChannel), [l1 = l1_](std::string_view message) {
        const auto nl = message.find('\n');
        if (nl == std::string_view::npos || message.substr(0, nl) == node_id()) return;
        const auto key = message.substr(nl + 1);
        l1->erase(store::hash_key(key), key);
    });
}

}  // namespace cachalot::cache
