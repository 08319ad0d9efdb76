#include "cachalot/cache/tiered_cache.hpp"

namespace cachalot::cache {

boost::asio::awaitable<std::optional<Entry>> TieredCache::lookup(const std::string& key) {
    const auto hash = store::hash_key(key);
    if (l1_) {
        if (auto bytes = l1_->find(hash, key)) {
            if (auto entry = decode_entry(*bytes)) co_return entry;
            l1_->erase(hash, key);  // not ours to trust
        }
    }
    if (!l2_) co_return std::nullopt;
    auto found = co_await l2_->find_with_expiry(hash, key);
    if (!found) co_return std::nullopt;
    auto entry = decode_entry(found->value);
    if (!entry) {
        l2_->discard(hash, key);
        co_return std::nullopt;
    }
    if (l1_) l1_->put(hash, key, found->value, found->expiry);
    co_return entry;
}

bool TieredCache::insert(const std::string& key, const std::string& bytes, store::WallMillis expiry) {
    const auto hash = store::hash_key(key);
    bool stored = l1_ && l1_->put(hash, key, bytes, expiry);
    if (l2_ && l2_->put_later(hash, key, bytes, expiry)) stored = true;
    return stored;
}

void TieredCache::erase(const std::string& key) {
    const auto hash = store::hash_key(key);
    if (l1_) l1_->erase(hash, key);
    if (l2_) l2_->erase_later(hash, key);
}

}  // namespace cachalot::cache
