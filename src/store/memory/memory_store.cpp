#include "cachalot/store/memory_store.hpp"

namespace cachalot::store {

MemoryStore::MemoryStore(Options options) : options_(std::move(options)) {
    stats_.capacity_bytes = options_.capacity_bytes;
}

void MemoryStore::remove(Lru::iterator it) {
    stats_.bytes_used -= it->key.size() + it->value.size() + kItemOverhead;
    --stats_.items;
    index_.erase(it->key);
    lru_.erase(it);
}

std::optional<std::string> MemoryStore::find(Hash, std::string_view key) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) {
        ++stats_.misses;
        return std::nullopt;
    }
    if (it->second->expiry <= options_.now()) {
        remove(it->second);
        ++stats_.expirations;
        ++stats_.misses;
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    ++stats_.hits;
    return it->second->value;
}

bool MemoryStore::put(Hash, std::string_view key, std::string_view value, WallMillis expiry) {
    std::lock_guard lock(mutex_);
    const std::size_t cost = key.size() + value.size() + kItemOverhead;
    if (value.size() > options_.max_object_size || cost > options_.capacity_bytes) {
        ++stats_.refused_too_large;
        return false;
    }
    if (expiry <= options_.now()) return false;
    if (auto it = index_.find(key); it != index_.end()) remove(it->second);
    while (stats_.bytes_used + cost > options_.capacity_bytes) {
        remove(std::prev(lru_.end()));
        ++stats_.evictions;
    }
    lru_.push_front(Entry{std::string(key), std::string(value), expiry});
    index_.emplace(lru_.front().key, lru_.begin());
    stats_.bytes_used += cost;
    ++stats_.items;
    ++stats_.puts;
    return true;
}

bool MemoryStore::erase(Hash, std::string_view key) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    remove(it->second);
    return true;
}

StoreStats MemoryStore::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace cachalot::store
