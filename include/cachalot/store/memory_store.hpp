#pragma once
// The reference store: a byte-bounded exact LRU in process memory. It defines the behaviour
// every store must match (the shared store test suite runs against it) and is the LRU baseline
// of the L1 hit-ratio benchmark.

#include "cachalot/store/store.hpp"

#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace cachalot::store {

class MemoryStore final : public Tier {
public:
    struct Options {
        std::size_t capacity_bytes = 64 * 1024 * 1024;
        std::size_t max_object_size = 1024 * 1024;
        WallClock now = wall_now;
    };
    /// Bytes an entry costs beyond its key and value (bookkeeping), so budgets compare with L1.
    static constexpr std::size_t kItemOverhead = 48;

    explicit MemoryStore(Options options);

    std::optional<std::string> find(Hash hash, std::string_view key) override;
    bool put(Hash hash, std::string_view key, std::string_view value, WallMillis expiry) override;
    bool erase(Hash hash, std::string_view key) override;
    StoreStats stats() const;

private:
    struct Entry {
        std::string key;
        std::string value;
        WallMillis expiry;
    };
    using Lru = std::list<Entry>;  // front = most recently used
    void remove(Lru::iterator it);

    Options options_;
    mutable std::mutex mutex_;
    Lru lru_;
    std::unordered_map<std::string_view, Lru::iterator> index_;
    StoreStats stats_;
};

}  // namespace cachalot::store
